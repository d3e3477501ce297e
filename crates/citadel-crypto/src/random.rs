//! Randomness from the operating system, through the backend's DRBG.

use crate::{Error, Result};
use zeroize::Zeroizing;

/// Fills `out` with cryptographically secure random bytes.
pub fn fill(out: &mut [u8]) -> Result<()> {
    aws_lc_rs::rand::fill(out).map_err(|_| Error::Random)
}

/// Returns `N` random bytes that are zeroized when dropped.
pub fn secret_array<const N: usize>() -> Result<Zeroizing<[u8; N]>> {
    let mut out = Zeroizing::new([0u8; N]);
    fill(out.as_mut())?;
    Ok(out)
}

/// Returns `N` random bytes (for nonces, salts and other public values).
pub fn array<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    fill(&mut out)?;
    Ok(out)
}

/// The backend's DRBG as an infallible `rand_core` generator, for libraries
/// that take one (it would panic only if the operating system's entropy
/// source failed, which the backend treats as fatal too).
pub fn rng() -> rand_core::UnwrapErr<BackendRng> {
    rand_core::UnwrapErr(BackendRng)
}

/// The backend's DRBG as a `rand_core` generator, for backends that take one.
pub struct BackendRng;

impl rand_core::TryRng for BackendRng {
    type Error = Error;

    fn try_next_u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(array::<4>()?))
    }

    fn try_next_u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(array::<8>()?))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<()> {
        fill(dst)
    }
}

impl rand_core::TryCryptoRng for BackendRng {}
