//! Shamir's secret sharing over GF(2^8), by `vsss-rs` (audited), with
//! shares laid out as HashiCorp Vault's are: the y bytes, then the x
//! coordinate (`y_1 … y_n ‖ x`), so a 32-byte root key gives 33-byte
//! unseal keys.

use crate::Error;
use vsss_rs::Gf256;
use zeroize::Zeroizing;

/// Splits `secret` into `shares` unseal keys, any `threshold` of which
/// recover it.
pub fn split(secret: &[u8], shares: u8, threshold: u8) -> Result<Vec<Zeroizing<Vec<u8>>>, Error> {
    let parts = Gf256::split_bytes(
        usize::from(threshold),
        usize::from(shares),
        secret,
        citadel_crypto::random::rng(),
    )
    .map_err(|e| Error::Internal(format!("secret sharing failed: {e:?}")))?;
    Ok(parts
        .into_iter()
        .map(|p| {
            let p = Zeroizing::new(p);
            // vsss-rs puts x first; Vault puts it last.
            let mut v = Zeroizing::new(Vec::with_capacity(p.len()));
            v.extend_from_slice(&p[1..]);
            v.push(p[0]);
            v
        })
        .collect())
}

/// Recovers the secret from unseal keys (Vault layout).
pub fn combine(keys: &[Zeroizing<Vec<u8>>]) -> Result<Zeroizing<Vec<u8>>, Error> {
    let bad = || Error::BadRequest("the unseal keys do not form a valid set".into());
    if keys.len() < 2 {
        return Err(bad());
    }
    let len = keys[0].len();
    let mut parts = Vec::with_capacity(keys.len());
    let mut xs = std::collections::HashSet::new();
    for k in keys {
        if k.len() != len || len < 2 || !xs.insert(k[len - 1]) || k[len - 1] == 0 {
            return Err(bad());
        }
        let mut p = Vec::with_capacity(len);
        p.push(k[len - 1]);
        p.extend_from_slice(&k[..len - 1]);
        parts.push(p);
    }
    let secret = Gf256::combine_bytes(&parts).map_err(|_| bad());
    for p in &mut parts {
        zeroize::Zeroize::zeroize(p);
    }
    Ok(Zeroizing::new(secret?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_threshold_subset_recovers_and_fewer_do_not(
            secret in prop::collection::vec(any::<u8>(), 8..48),
            n in 2u8..8, t_off in 0u8..6, pick in any::<u64>(),
        ) {
            let t = 2 + t_off % (n - 1);
            let keys = split(&secret, n, t).unwrap();
            prop_assert_eq!(keys.len(), usize::from(n));
            prop_assert!(keys.iter().all(|k| k.len() == secret.len() + 1));
            // A pseudo-random subset of size t.
            let mut idx: Vec<usize> = (0..usize::from(n)).collect();
            let mut x = pick | 1;
            for i in (1..idx.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                idx.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let subset: Vec<_> = idx[..usize::from(t)].iter().map(|&i| keys[i].clone()).collect();
            prop_assert_eq!(&combine(&subset).unwrap()[..], &secret[..]);
            if t > 2 {
                let fewer = &subset[..usize::from(t) - 1];
                prop_assert_ne!(&combine(fewer).unwrap()[..], &secret[..]);
            }
        }
    }

    #[test]
    fn malformed_sets_are_refused() {
        let keys = split(b"0123456789abcdef0123456789abcdef", 5, 3).unwrap();
        assert!(combine(&keys[..1]).is_err());
        let dup = vec![keys[0].clone(), keys[0].clone(), keys[1].clone()];
        assert!(combine(&dup).is_err());
        let mut short = keys[..3].to_vec();
        short[2] = Zeroizing::new(short[2][1..].to_vec());
        assert!(combine(&short).is_err());
    }
}
