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
    /// x86_64 with AVX-512F besides AVX2+FMA (Skylake-SP and later Xeons, Zen 4/5):
    /// 512-bit GEMM tiles; the other kernels use their AVX2 forms.
    Avx512,
    /// wasm32 built with `-C target-feature=+simd128`.
    WasmSimd128,
}

impl Isa {
    /// The ISA every kernel in this process uses. `CAIRN_ISA=generic` (or `avx2`) forces
    /// the portable (or AVX2) kernels on native builds, to compare or to work around a
    /// suspect CPU.
    pub fn current() -> Isa {
        static CHOSEN: OnceLock<Isa> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            #[cfg(not(target_arch = "wasm32"))]
            match std::env::var("CAIRN_ISA").as_deref() {
                Ok("generic") => return Isa::Generic,
                Ok("avx2") if Isa::Avx2Fma.is_available() => return Isa::Avx2Fma,
                _ => {}
            }
            Isa::best_available()
        })
    }

    /// The fastest ISA this machine (or this wasm build) supports.
    pub fn best_available() -> Isa {
        Isa::detected()[0]
    }

    /// Every ISA this process can run, best first (tests compare them all against the reference).
    pub fn all_available() -> Vec<Isa> {
        Isa::detected().to_vec()
    }

    /// Whether this process can run `self` (no allocation: kernels check it on every call).
    pub fn is_available(self) -> bool {
        Isa::detected().contains(&self)
    }

    fn detected() -> &'static [Isa] {
        static FOUND: OnceLock<Vec<Isa>> = OnceLock::new();
        FOUND.get_or_init(Isa::detect)
    }

    // Which pushes exist depends on the target (cfg), so the list cannot be a `vec![]` literal.
    #[allow(clippy::vec_init_then_push)]
    fn detect() -> Vec<Isa> {
        let mut found = Vec::new();
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            if std::arch::is_x86_feature_detected!("avx512f") {
                found.push(Isa::Avx512);
            }
            found.push(Isa::Avx2Fma);
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        found.push(Isa::WasmSimd128);
        found.push(Isa::Generic);
        found
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Generic => "generic",
            Isa::Avx2Fma => "x86_64-avx2-fma",
            Isa::Avx512 => "x86_64-avx512f",
            Isa::WasmSimd128 if cfg!(target_feature = "relaxed-simd") => "wasm32-simd128-relaxed",
            Isa::WasmSimd128 => "wasm32-simd128",
        }
    }
}
