//! clippy::clone_on_copy, on purpose (see Cargo.toml).

pub fn copied() -> u32 {
    let x: u32 = 5;
    x.clone()
}
