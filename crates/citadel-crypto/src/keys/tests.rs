use super::*;
use proptest::prelude::*;

fn quick_algs() -> Vec<Algorithm> {
    Algorithm::ALL
        .iter()
        .copied()
        .filter(|a| a.family() != Family::AgeRecipient)
        .filter(|a| {
            !(a.name().starts_with("slh")
                && a.name().ends_with('s')
                && *a != Algorithm::SlhDsaSha2_128s)
        })
        .collect()
}

#[test]
fn pkcs8_and_spki_round_trip_every_algorithm() {
    for alg in quick_algs() {
        let key = PrivateKey::generate(alg).unwrap();
        let pem = key.to_pem(PrivateKeyForm::Seed, None).unwrap();
        let back = PrivateKey::from_pem(&pem, None).unwrap();
        assert_eq!(back.algorithm(), alg);
        assert_eq!(
            back.public_key().as_bytes(),
            key.public_key().as_bytes(),
            "{alg}"
        );
        let pub_pem = key.public_key().to_pem().unwrap();
        let pk = PublicKey::from_pem(&pub_pem).unwrap();
        assert_eq!(pk.as_bytes(), key.public_key().as_bytes());
    }
}

#[test]
fn lattice_keys_read_all_three_forms() {
    for alg in [
        Algorithm::MlKem512,
        Algorithm::MlKem768,
        Algorithm::MlKem1024,
        Algorithm::MlDsa44,
        Algorithm::MlDsa65,
        Algorithm::MlDsa87,
    ] {
        let key = PrivateKey::generate(alg).unwrap();
        for form in [
            PrivateKeyForm::Seed,
            PrivateKeyForm::Expanded,
            PrivateKeyForm::Both,
        ] {
            let der = key.to_pkcs8_der(form).unwrap();
            let back = PrivateKey::from_pkcs8_der(der.expose()).unwrap();
            assert_eq!(
                back.public_key().as_bytes(),
                key.public_key().as_bytes(),
                "{alg} {form:?}"
            );
        }
    }
}

#[test]
fn seed_form_has_the_lamps_layout() {
    let key =
        PrivateKey::Kem(kem::DecapsulationKey::from_seed(Algorithm::MlKem768, &[7u8; 64]).unwrap());
    let der = key.to_pkcs8_der(PrivateKeyForm::Seed).unwrap();
    // SEQUENCE { INTEGER 0, SEQUENCE { OID 2.16.840.1.101.3.4.4.2 }, OCTET STRING { [0] 64 bytes } }
    let expected_prefix =
        hex::decode("3054020100300b0609608648016503040402044280 40".replace(' ', "")).unwrap();
    assert_eq!(&der.expose()[..expected_prefix.len()], &expected_prefix[..]);
    assert_eq!(der.len(), 86);
}

#[test]
fn mismatched_both_form_is_rejected() {
    let a = PrivateKey::generate(Algorithm::MlDsa44).unwrap();
    let b = PrivateKey::generate(Algorithm::MlDsa44).unwrap();
    let both = der::sequence(&[
        &der::tlv(der::OCTET_STRING, a.seed().unwrap()),
        &der::tlv(der::OCTET_STRING, b.expanded().expose()),
    ]);
    let body = [
        der::uint(0).as_slice(),
        &alg_identifier(Algorithm::MlDsa44).unwrap(),
        &der::tlv(der::OCTET_STRING, &both),
    ]
    .concat();
    let err = PrivateKey::from_pkcs8_der(&der::tlv(der::SEQUENCE, &body)).unwrap_err();
    assert!(err.to_string().contains("do not match"), "{err}");
}

#[test]
fn encrypted_pkcs8_round_trip_and_wrong_passphrase() {
    let key = PrivateKey::generate(Algorithm::MlDsa65).unwrap();
    for kdf in [Kdf::Scrypt { log_n: 10 }, Kdf::Pbkdf2 { iterations: 1000 }] {
        let pem = key
            .to_pem(PrivateKeyForm::Seed, Some((b"correct horse", kdf)))
            .unwrap();
        assert!(PrivateKey::pem_is_encrypted(&pem));
        let back = PrivateKey::from_pem(&pem, Some(b"correct horse")).unwrap();
        assert_eq!(back.public_key().as_bytes(), key.public_key().as_bytes());
        assert!(matches!(
            PrivateKey::from_pem(&pem, Some(b"wrong")),
            Err(Error::BadPassphrase)
        ));
        assert!(matches!(
            PrivateKey::from_pem(&pem, None),
            Err(Error::PassphraseRequired)
        ));
    }
}

#[test]
fn truncated_and_garbage_inputs_are_errors() {
    let key = PrivateKey::generate(Algorithm::MlKem768).unwrap();
    let der = key.to_pkcs8_der(PrivateKeyForm::Seed).unwrap();
    for n in 0..der.len() {
        assert!(
            PrivateKey::from_pkcs8_der(&der.expose()[..n]).is_err(),
            "prefix of {n} bytes accepted"
        );
    }
    let spki = key.public_key().to_spki_der().unwrap();
    for n in [0, 1, 10, spki.len() - 1] {
        assert!(PublicKey::from_spki_der(&spki[..n]).is_err());
    }
    let mut extra = spki.clone();
    extra.push(0);
    assert!(PublicKey::from_spki_der(&extra).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn ed25519_and_mldsa_codecs_round_trip(seed in prop::array::uniform32(any::<u8>()), pick in 0usize..2) {
        let alg = [Algorithm::Ed25519, Algorithm::MlDsa44][pick];
        let key = PrivateKey::Signature(sig::SigningKey::from_seed(alg, &seed).unwrap());
        let der = key.to_pkcs8_der(PrivateKeyForm::Seed).unwrap();
        let back = PrivateKey::from_pkcs8_der(der.expose()).unwrap();
        prop_assert_eq!(back.public_key().as_bytes(), key.public_key().as_bytes());
        let spki = key.public_key().to_spki_der().unwrap();
        prop_assert_eq!(PublicKey::from_spki_der(&spki).unwrap().as_bytes(), key.public_key().as_bytes());
    }

    #[test]
    fn private_key_parser_never_panics(data in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = PrivateKey::from_pkcs8_der(&data);
        let _ = PublicKey::from_spki_der(&data);
        let _ = pbes2::decrypt(&data, b"pw");
    }

    #[test]
    fn mutated_pkcs8_never_panics(idx in 0usize..86, byte in any::<u8>()) {
        let key = PrivateKey::Kem(kem::DecapsulationKey::from_seed(Algorithm::MlKem512, &[1u8; 64]).unwrap());
        let mut der = key.to_pkcs8_der(PrivateKeyForm::Seed).unwrap().expose().to_vec();
        if idx < der.len() { der[idx] = byte; }
        let _ = PrivateKey::from_pkcs8_der(&der);
    }
}
