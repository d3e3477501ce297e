//! Our API beside the raw backend call it wraps, measured in the same run,
//! for ML-KEM-768 encaps/decaps and ML-DSA-65 sign/verify (the goal: under
//! 5% overhead), plus the other algorithms' headline operations.
//!
//! "raw" is the backend crate called directly with the same inputs and the
//! same randomness source (aws-lc-rs's DRBG), so the difference is exactly
//! what citadel-crypto adds: algorithm dispatch, length checks, secret
//! wrappers.
//!
//! Run: `cargo bench -p citadel-crypto --bench api_overhead`

use citadel_crypto::{Algorithm, kem, sig};
use criterion::{Criterion, criterion_group, criterion_main};
use ml_dsa::MlDsa65;
use ml_kem::array::Array;
use ml_kem::{Decapsulate, KeyExport, MlKem768};
use std::hint::black_box;

fn mlkem768(c: &mut Criterion) {
    let seed = [7u8; 64];
    let ours = kem::DecapsulationKey::from_seed(Algorithm::MlKem768, &seed).unwrap();
    let ours_ek = ours.encapsulation_key();
    let raw = ml_kem::DecapsulationKey::<MlKem768>::from_seed(Array::from(seed));
    let raw_ek = raw.encapsulation_key().clone();
    assert_eq!(raw_ek.to_bytes().to_vec(), ours_ek.to_bytes());
    let (ct, _) = ours_ek.encapsulate().unwrap();
    let raw_ct = Array::try_from(ct.as_slice()).unwrap();

    let mut g = c.benchmark_group("ml-kem-768");
    g.bench_function("encaps/citadel", |b| {
        b.iter(|| black_box(ours_ek.encapsulate().unwrap()))
    });
    g.bench_function("encaps/raw-ml-kem", |b| {
        b.iter(|| {
            let mut m = [0u8; 32];
            aws_lc_rs::rand::fill(&mut m).unwrap();
            black_box(raw_ek.encapsulate_deterministic(&Array::from(m)))
        })
    });
    g.bench_function("decaps/citadel", |b| {
        b.iter(|| black_box(ours.decapsulate(&ct).unwrap()))
    });
    g.bench_function("decaps/raw-ml-kem", |b| {
        b.iter(|| black_box(raw.decapsulate(&raw_ct)))
    });
    g.finish();
}

fn mldsa65(c: &mut Criterion) {
    let seed = [9u8; 32];
    let msg = [0x5Au8; 256];
    let ours = sig::SigningKey::from_seed(Algorithm::MlDsa65, &seed).unwrap();
    let ours_vk = ours.verifying_key();
    let raw = ml_dsa::SigningKey::<MlDsa65>::from_seed(&Array::from(seed));
    let raw_sk = raw.expanded_key().clone();
    let raw_vk = raw_sk.verifying_key();
    let s = ours.sign(&msg, b"").unwrap();
    let raw_sig = ml_dsa::Signature::<MlDsa65>::decode(
        &ml_dsa::EncodedSignature::<MlDsa65>::try_from(s.as_slice()).unwrap(),
    )
    .unwrap();

    let mut g = c.benchmark_group("ml-dsa-65");
    g.bench_function("sign/citadel", |b| {
        b.iter(|| black_box(ours.sign(&msg, b"").unwrap()))
    });
    g.bench_function("sign/raw-ml-dsa", |b| {
        b.iter(|| {
            let mut rnd = [0u8; 32];
            aws_lc_rs::rand::fill(&mut rnd).unwrap();
            // Pure ML-DSA with an empty context: M' = 0x00 || 0x00 || M.
            black_box(
                raw_sk
                    .sign_internal(&[&[0, 0], &msg], &Array::from(rnd))
                    .encode(),
            )
        })
    });
    g.bench_function("verify/citadel", |b| {
        b.iter(|| ours_vk.verify(&msg, b"", &s).unwrap())
    });
    g.bench_function("verify/raw-ml-dsa", |b| {
        b.iter(|| {
            // The raw call decodes the signature too, as ours must.
            let sig = ml_dsa::Signature::<MlDsa65>::decode(
                &ml_dsa::EncodedSignature::<MlDsa65>::try_from(s.as_slice()).unwrap(),
            )
            .unwrap();
            assert!(raw_vk.verify_with_context(&msg, b"", black_box(&sig)))
        })
    });
    let _ = raw_sig;
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = mlkem768, mldsa65
}
criterion_main!(benches);
