//! Which instruction set the kernels use, decided once per process.
//!
//! Native x86_64 detects AVX2+FMA at run time (one binary runs everywhere);
//! wasm32 has no run-time feature detection inside a module, so SIMD is a
//! compile-time choice there and the page picks the matching `.wasm` build.

use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust; LLVM vectorizes what it can for the target baseline.
    Generic,
    /// x86_64 with AVX2 and FMA (Haswell and later, Zen).
    Avx2Fma,
    /// wasm32 built with `-C target-feature=+simd128`.
    WasmSimd128,
}

impl Isa {
    /// The ISA every kernel in this process uses. `CAIRN_ISA=generic` forces the
    /// portable kernels on native builds (to compare, or to work around a suspect CPU).
    pub fn current() -> Isa {
        static CHOSEN: OnceLock<Isa> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            #[cfg(not(target_arch = "wasm32"))]
            if std::env::var("CAIRN_ISA").is_ok_and(|v| v == "generic") {
                return Isa::Generic;
            }
            Isa::best_available()
        })
    }

    /// The fastest ISA this machine (or this wasm build) supports.
    pub fn best_available() -> Isa {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Isa::Avx2Fma;
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        return Isa::WasmSimd128;
        #[allow(unreachable_code)]
        Isa::Generic
    }

    /// Every ISA this process can run, best first (tests compare them all against the reference).
    pub fn all_available() -> Vec<Isa> {
        let best = Isa::best_available();
        if best == Isa::Generic {
            vec![Isa::Generic]
        } else {
            vec![best, Isa::Generic]
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Generic => "generic",
            Isa::Avx2Fma => "x86_64-avx2-fma",
            Isa::WasmSimd128 => "wasm32-simd128",
        }
    }
}
