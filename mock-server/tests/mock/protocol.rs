//! The RFC 8555 protocol with the Sectigo personality, over real TLS on 127.0.0.1.

#![allow(clippy::unwrap_used)]

use crate::common;

use acme_proto::eab::MacAlgorithm;
use acme_proto::{AccountKey, SignatureAlgorithm, b64};
use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn directories_are_sectigos() {
    let server = start().await;
    let http = http_client(&server.ready().ca_bundle);
    for (name, path) in [(RSA, "InCommonRSAOV"), (ECC, "InCommonECCOV")] {
        let url = server.directory_url(name).unwrap();
        assert!(url.ends_with(&format!("/v2/{path}")));
        let r = http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().contains_key("replay-nonce"));
        assert_eq!(
            r.headers()["link"].to_str().unwrap(),
            format!("<{url}>;rel=\"index\"")
        );
        let body: Value = r.json().await.unwrap();
        assert!(body.get("newAuthz").is_none(), "Sectigo has no newAuthz");
        assert_eq!(body["meta"]["externalAccountRequired"], true);
        // The full text is snapshotted in control.rs, with every other profile's.
    }
    // /v2/directory is not a directory at Sectigo.
    let base = server
        .ready()
        .directory
        .rsplit_once("/v2/")
        .unwrap()
        .0
        .to_owned();
    let r = http
        .get(format!("{base}/v2/directory"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.headers().contains_key("replay-nonce"),
        "errors carry nonces too"
    );
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = http
        .get(format!("{base}/v2/NoSuchProfile"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn new_nonce_by_head_and_get() {
    let server = start().await;
    let client = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    let head = client
        .http
        .head(&client.dir.new_nonce)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let get = client.http.get(&client.dir.new_nonce).send().await.unwrap();
    assert_eq!(get.status(), 204);
    let a = head.headers()["replay-nonce"].to_str().unwrap().to_owned();
    let b = get.headers()["replay-nonce"].to_str().unwrap().to_owned();
    assert_ne!(a, b);
    assert_eq!(a.len(), 43, "32-byte nonces, as Sectigo's");
    assert!(
        get.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("no-store")
    );
    let post = client
        .http
        .post(&client.dir.new_nonce)
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
}

#[tokio::test]
async fn every_account_key_algorithm_registers() {
    let server = start().await;
    for alg in SignatureAlgorithm::ALL {
        let mut client = Client::new(&server, RSA, alg).await;
        let r = client.register().await;
        assert_eq!(r.status, 201, "{alg}: {}", r.text());
        assert_eq!(r.json()["status"], "valid");
        // The same key again: the existing account, 200 and the same Location.
        let location = r.location();
        let again = client.register().await;
        assert_eq!(again.status, 200, "{alg}");
        assert_eq!(again.location(), location);
    }
}

#[tokio::test]
async fn nonces_are_single_use_with_sectigo_texts() {
    let server = start().await;
    let mut client = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    client.register().await;
    let url = client.kid.clone().unwrap();
    let nonce = client.fresh_nonce().await;
    let header = json!({"alg": "ES256", "kid": url, "nonce": nonce});
    let first = client.post_header(&url, header.clone(), None).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let replay = client.post_header(&url, header, None).await;
    let detail = replay.expect_problem(400, "badNonce");
    assert_eq!(detail, "The Replay Nonce is not recognized");
    let garbled = client
        .post_header(
            &url,
            json!({"alg": "ES256", "kid": url, "nonce": "not base64!"}),
            None,
        )
        .await;
    let detail = garbled.expect_problem(400, "malformed");
    assert_eq!(detail, "The Replay Nonce could not be base64url-decoded");
    // The badNonce response carried a fresh nonce; the retry with it works.
    let retry = client.post(&url, None).await;
    assert_eq!(retry.status, 200);
    let missing = client
        .post_header(
            &url,
            json!({"alg": "ES256", "kid": url, "nonce": Value::Null}),
            None,
        )
        .await;
    missing.expect_problem(400, "badNonce");
}

#[tokio::test]
async fn jws_violations_get_the_right_problem() {
    let server = start().await;
    let mut client = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    client.register().await;
    let kid = client.kid.clone().unwrap();
    let new_order = client.dir.new_order.clone();
    let new_account = client.dir.new_account.clone();
    let jwk = client.key.jwk().to_json();
    let order = json!({"identifiers": [{"type": "dns", "value": "physics.example.edu"}]});

    // alg the key cannot make.
    let r = client
        .post_header(
            &new_order,
            json!({"alg": "HS256", "kid": kid}),
            Some(order.clone()),
        )
        .await;
    r.expect_problem(400, "badSignatureAlgorithm");
    assert!(
        r.problem()
            .algorithms
            .unwrap()
            .contains(&"ES256".to_owned())
    );
    // url does not match.
    let r = client
        .post_header(
            &new_order,
            json!({"alg": "ES256", "kid": kid, "url": new_account}),
            Some(order.clone()),
        )
        .await;
    r.expect_problem(403, "unauthorized");
    // jwk where kid is required, kid on newAccount, both, neither.
    let r = client
        .post_header(
            &new_order,
            json!({"alg": "ES256", "jwk": jwk}),
            Some(order.clone()),
        )
        .await;
    r.expect_problem(400, "malformed");
    let r = client
        .post_header(
            &new_account,
            json!({"alg": "ES256", "kid": kid}),
            Some(json!({})),
        )
        .await;
    r.expect_problem(400, "malformed");
    let r = client
        .post_header(
            &new_order,
            json!({"alg": "ES256", "kid": kid, "jwk": jwk}),
            Some(order.clone()),
        )
        .await;
    r.expect_problem(400, "malformed");
    let r = client
        .post_header(&new_order, json!({"alg": "ES256"}), Some(order.clone()))
        .await;
    r.expect_problem(400, "malformed");
    // Unknown account.
    let r = client
        .post_header(
            &new_order,
            json!({"alg": "ES256", "kid": format!("{kid}x")}),
            Some(order.clone()),
        )
        .await;
    r.expect_problem(400, "accountDoesNotExist");
    // A signature by another key.
    let other = AccountKey::generate(SignatureAlgorithm::Es256).unwrap();
    let nonce = client.fresh_nonce().await;
    let forged = other
        .sign_request(Some(&kid), &nonce, &new_order, Some(&order))
        .unwrap();
    let r = client
        .post_raw(
            &new_order,
            serde_json::to_string(&forged).unwrap(),
            "application/jose+json",
        )
        .await;
    assert_eq!(r.expect_problem(400, "malformed"), "JWS verification error");
    // Wrong Content-Type, not a JWS, unknown members.
    let nonce = client.fresh_nonce().await;
    let good = client
        .key
        .sign_request(Some(&kid), &nonce, &new_order, Some(&order))
        .unwrap();
    let r = client
        .post_raw(
            &new_order,
            serde_json::to_string(&good).unwrap(),
            "application/json",
        )
        .await;
    r.expect_problem(415, "malformed");
    let r = client
        .post_raw(&new_order, "{not json".into(), "application/jose+json")
        .await;
    r.expect_problem(400, "malformed");
    let mut extra = serde_json::to_value(&good).unwrap();
    extra["header"] = json!({"kid": kid});
    let r = client
        .post_raw(&new_order, extra.to_string(), "application/jose+json")
        .await;
    r.expect_problem(400, "malformed");
}

#[tokio::test]
async fn eab_is_mandatory_with_sectigo_texts() {
    let server = start().await;
    let hmac = demo_hmac();
    let mut client = Client::new(&server, RSA, SignatureAlgorithm::Rs256).await;

    let r = client
        .register_with(json!({"termsOfServiceAgreed": true}))
        .await;
    let detail = r.expect_problem(400, "externalAccountRequired");
    assert_eq!(
        detail,
        "The request must include a value for the \"externalAccountBinding\" field"
    );
    insta::assert_json_snapshot!("problem-missing-eab", r.json());

    let bad = client.eab(DEMO_KID, &[0x55; 64], MacAlgorithm::Hs256);
    let r = client
        .register_with(json!({"externalAccountBinding": bad}))
        .await;
    assert_eq!(
        r.expect_problem(400, "malformed"),
        "[External Account Binding] Invalid MAC on JWS request"
    );

    let unknown = client.eab("NoSuchKeyId", &hmac, MacAlgorithm::Hs256);
    let r = client
        .register_with(json!({"externalAccountBinding": unknown}))
        .await;
    assert_eq!(
        r.expect_problem(400, "malformed"),
        "[External Account Binding] The Key Identifier was not recognized"
    );

    // No kid in the inner header.
    let jwk_text = client.key.jwk().canonical_json();
    let header = b64::encode(json!({"alg": "HS256", "url": client.dir.new_account}).to_string());
    let no_kid =
        json!({"protected": header, "payload": b64::encode(&jwk_text), "signature": "AAAA"});
    let r = client
        .register_with(json!({"externalAccountBinding": no_kid}))
        .await;
    assert_eq!(
        r.expect_problem(400, "malformed"),
        "A Key ID MUST be specified"
    );

    // The binding over another account key.
    let other = AccountKey::generate(SignatureAlgorithm::Es256).unwrap();
    let wrong_key = acme_proto::eab::sign(
        MacAlgorithm::Hs256,
        DEMO_KID,
        &hmac,
        &client.dir.new_account,
        other.jwk(),
    );
    let r = client
        .register_with(json!({"externalAccountBinding": wrong_key}))
        .await;
    r.expect_problem(400, "malformed");

    // HS384 and HS512 work, and the JWK is compared by value: spaces and member order differ.
    for alg in [MacAlgorithm::Hs384, MacAlgorithm::Hs512] {
        let mut c = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
        let e = c.eab(DEMO_KID, &hmac, alg);
        assert_eq!(
            c.register_with(json!({"externalAccountBinding": e}))
                .await
                .status,
            201
        );
    }
    let mut spaced = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    let jwk = spaced.key.jwk().to_json();
    let payload = format!(
        "{{ \"y\": {}, \"x\": {}, \"kty\": \"EC\", \"crv\": \"P-256\" }}",
        jwk["y"], jwk["x"]
    );
    let protected = b64::encode(
        json!({"alg": "HS256", "kid": DEMO_KID, "url": spaced.dir.new_account}).to_string(),
    );
    let payload = b64::encode(payload);
    let tag = {
        use hmac::Mac as _;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&hmac).unwrap();
        mac.update(format!("{protected}.{payload}").as_bytes());
        mac.finalize().into_bytes()
    };
    let binding =
        json!({"protected": protected, "payload": payload, "signature": b64::encode(tag)});
    let r = spaced
        .register_with(json!({"externalAccountBinding": binding}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

const SINGLE_USE_ORG: &str = include_str!("../../../fixtures/orgs/single-use-and-other.toml");

#[tokio::test]
async fn single_use_credentials_bind_once() {
    let orgs = mock_server::Orgs::from_toml(SINGLE_USE_ORG, "test").unwrap();
    let server = start_with(orgs, mock_server::Profile::all_built_in().unwrap()).await;
    let hmac = b64::decode("c2luZ2xlLXVzZS1rZXk").unwrap();
    let mut first = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    let e = first.eab("SingleUseKeyId00000000", &hmac, MacAlgorithm::Hs256);
    assert_eq!(
        first
            .register_with(json!({"externalAccountBinding": e}))
            .await
            .status,
        201
    );
    let mut second = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    let e = second.eab("SingleUseKeyId00000000", &hmac, MacAlgorithm::Hs256);
    let r = second
        .register_with(json!({"externalAccountBinding": e}))
        .await;
    assert_eq!(
        r.expect_problem(400, "malformed"),
        "[External Account Binding] The account is not awaiting external account binding"
    );
}

#[tokio::test]
async fn only_return_existing_update_and_deactivate() {
    let server = start().await;
    let mut client = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    let r = client
        .register_with(json!({"onlyReturnExisting": true}))
        .await;
    assert_eq!(
        r.expect_problem(400, "accountDoesNotExist"),
        "No account exists with the provided key"
    );
    let created = client.register().await;
    assert_eq!(created.status, 201);
    let found = client
        .register_with(json!({"onlyReturnExisting": true}))
        .await;
    assert_eq!(found.status, 200);
    assert_eq!(found.location(), created.location());

    let url = client.kid.clone().unwrap();
    let r = client
        .post(
            &url,
            Some(json!({"contact": ["mailto:new@physics.example.edu"]})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["contact"],
        json!(["mailto:new@physics.example.edu"])
    );
    let r = client
        .post(&url, Some(json!({"contact": ["tel:+15555550100"]})))
        .await;
    r.expect_problem(400, "unsupportedContact");

    let key_change = client.dir.key_change.clone();
    let r = client.post(&key_change, Some(json!({}))).await;
    assert_eq!(
        r.expect_problem(500, "serverInternal"),
        "Not yet implemented"
    );

    let r = client
        .post(&url, Some(json!({"status": "deactivated"})))
        .await;
    assert_eq!(r.json()["status"], "deactivated");
    let r = client.new_order(&["physics.example.edu"]).await;
    r.expect_problem(403, "unauthorized");
}

#[tokio::test]
async fn orders_follow_delegation() {
    let server = start().await;
    let mut client = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    client.register().await;

    let r = client
        .new_order(&[
            "physics.example.edu",
            "www.physics.example.edu",
            "*.physics.example.edu",
        ])
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let order = r.json();
    assert_eq!(
        order["status"], "ready",
        "pre-validated names make a ready order"
    );
    let authz_url = order["authorizations"][2].as_str().unwrap().to_owned();
    let authz = client.get(&authz_url).await;
    assert_eq!(authz.header("retry-after").as_deref(), Some("300"));
    let authz = authz.json();
    assert_eq!(authz["status"], "valid");
    assert_eq!(authz["wildcard"], true);
    assert_eq!(authz["identifier"]["value"], "physics.example.edu");
    let chall = &authz["challenges"][0];
    assert_eq!(chall["type"], "sectigo-email-01");
    assert_eq!(chall["status"], "valid");
    assert!(chall.get("token").is_none());
    assert!(chall.get("validated").is_some());
    let chall_url = chall["url"].as_str().unwrap().to_owned();
    let r = client.post(&chall_url, Some(json!({}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("link")
            .map(|l| l.contains(&format!("<{authz_url}>;rel=\"up\""))),
        Some(true)
    );

    let r = client
        .new_order(&["physics.example.edu", "chemistry.example.edu"])
        .await;
    let detail = r.expect_problem(400, "rejectedIdentifier");
    assert!(
        detail.starts_with("A requested identifier has not been delegated."),
        "{detail}"
    );
    assert!(detail.contains("chemistry.example.edu"), "{detail}");
    let problem = r.problem();
    assert_eq!(problem.subproblems.len(), 1);
    assert_eq!(
        problem.subproblems[0].identifier.as_ref().unwrap().value,
        "chemistry.example.edu"
    );
    insta::assert_json_snapshot!("problem-undelegated", r.json());

    client
        .new_order(&["*.chemistry.example.edu"])
        .await
        .expect_problem(400, "rejectedIdentifier");
    client
        .new_order(&["xphysics.example.edu"])
        .await
        .expect_problem(400, "rejectedIdentifier");
    let r = client
        .post(
            &client.dir.new_order.clone(),
            Some(json!({"identifiers": [{"type": "ip", "value": "127.0.0.1"}]})),
        )
        .await;
    assert_eq!(
        r.expect_problem(400, "unsupportedIdentifier"),
        "IPv4 and IPv6 identifier types are not yet supported"
    );
    let r = client
        .new_order(&["physics.example.edu", "PHYSICS.example.edu"])
        .await;
    assert_eq!(
        r.expect_problem(400, "rejectedIdentifier"),
        "One or more identifiers are duplicated"
    );
    client.new_order(&[]).await.expect_problem(400, "malformed");
    client
        .new_order(&["bad_name.physics.example.edu"])
        .await
        .expect_problem(400, "rejectedIdentifier");
}

#[tokio::test]
async fn names_of_two_organisations_are_refused() {
    let text = r#"
[[organization]]
name = "Example University"
country = "US"
state = "Washington"
domains = ["example.edu"]
[[organization]]
name = "Example Hospital"
country = "US"
state = "Oregon"
domains = ["hospital.example.edu"]
[[organization.department]]
name = "Shared"
domains = ["hospital.example.edu"]
[[organization.department.eab]]
kid = "SharedKeyId00000000000"
hmac_key = "c2hhcmVk"
domains = ["hospital.example.edu"]
reusable = true
"#;
    // A credential of the hospital whose delegation also reaches into the university's
    // namespace is a configuration Sectigo can end up with; the OV check still refuses.
    let mut orgs = mock_server::Orgs::from_toml(text, "test").unwrap();
    orgs.add_domain(0, "a.hospital.example.edu", true).unwrap();
    let server = start_with(orgs, mock_server::Profile::all_built_in().unwrap()).await;
    let mut client = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    let e = client.eab(
        "SharedKeyId00000000000",
        &b64::decode("c2hhcmVk").unwrap(),
        MacAlgorithm::Hs256,
    );
    assert_eq!(
        client
            .register_with(json!({"externalAccountBinding": e}))
            .await
            .status,
        201
    );
    let r = client
        .new_order(&["hospital.example.edu", "x.a.hospital.example.edu"])
        .await;
    assert_eq!(
        r.expect_problem(400, "rejectedIdentifier"),
        "The identifiers are not all linked to the same preauthorized Subject organization name/address"
    );
    assert_eq!(
        client.new_order(&["hospital.example.edu"]).await.status,
        201
    );
}

#[tokio::test]
async fn post_as_get_is_enforced() {
    let server = start().await;
    let mut client = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    client.register().await;
    let r = client.new_order(&["physics.example.edu"]).await;
    let order_url = r.location();
    let authz_url = r.json()["authorizations"][0].as_str().unwrap().to_owned();
    for url in [order_url.clone(), authz_url, client.kid.clone().unwrap()] {
        let get = client.http.get(&url).send().await.unwrap();
        assert_eq!(get.status(), 405, "{url}");
        assert_eq!(get.headers()["allow"], "POST");
        assert!(get.headers().contains_key("replay-nonce"));
        let p: acme_proto::Problem = get.json().await.unwrap();
        assert_eq!(p.kind.name(), "malformed");
    }
    let r = client.post(&order_url, Some(json!({}))).await;
    r.expect_problem(400, "malformed");
    // Another account cannot read this order.
    let mut other = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    other.register().await;
    other
        .get(&order_url)
        .await
        .expect_problem(403, "unauthorized");
}

#[tokio::test]
async fn key_change_where_the_profile_supports_it() {
    let mut profile = mock_server::Profile::built_in(RSA).unwrap();
    profile.name = "rollover".into();
    profile.directory_path = "/v2/Rollover".into();
    profile.account.key_change_supported = true;
    let server = start_with(mock_server::Orgs::demo(), vec![profile]).await;
    let mut client = Client::new(&server, "rollover", SignatureAlgorithm::Es256).await;
    client.register().await;
    let account_url = client.kid.clone().unwrap();
    let url = client.dir.key_change.clone();
    let new_key = AccountKey::generate(SignatureAlgorithm::Es384).unwrap();
    let inner_for = |key: &AccountKey, old: &AccountKey, account: &str| {
        let header = json!({"alg": key.algorithm().name(), "jwk": key.jwk().to_json(), "url": url});
        let payload = json!({"account": account, "oldKey": old.jwk().to_json()});
        serde_json::to_value(key.sign_parts(&header, Some(&payload)).unwrap()).unwrap()
    };
    // oldKey that is not the account's key.
    let stranger = AccountKey::generate(SignatureAlgorithm::Es256).unwrap();
    let bad = inner_for(&new_key, &stranger, &account_url);
    client
        .post(&url, Some(bad))
        .await
        .expect_problem(403, "unauthorized");
    let good = inner_for(&new_key, &client.key, &account_url);
    let r = client.post(&url, Some(good)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The old key no longer signs for the account; the new one does.
    client
        .get(&account_url)
        .await
        .expect_problem(400, "malformed");
    let old = std::mem::replace(&mut client.key, new_key);
    assert_eq!(client.get(&account_url).await.status, 200);
    // The old key is free again: onlyReturnExisting finds nothing for it.
    let mut again = Client::with_key(&server, "rollover", old).await;
    again
        .register_with(json!({"onlyReturnExisting": true}))
        .await
        .expect_problem(400, "accountDoesNotExist");
}

#[tokio::test]
async fn hostile_requests_get_problem_documents() {
    let server = start().await;
    let mut client = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    let new_order = client.dir.new_order.clone();
    let huge = "x".repeat(300 * 1024);
    let r = client
        .post_raw(&new_order, huge, "application/jose+json")
        .await;
    r.expect_problem(413, "malformed");
    let base = client.dir.new_order.rsplit_once('/').unwrap().0.to_owned();
    let r = client
        .post_raw(
            &format!("{base}/order/%FF%FE"),
            "{}".into(),
            "application/jose+json",
        )
        .await;
    assert!(r.status >= 400 && r.status < 500, "{}", r.status);
    r.problem();
    let r = client
        .post_raw(
            &client.dir.new_nonce.clone().replace("/newNonce", ""),
            "{}".into(),
            "application/jose+json",
        )
        .await;
    r.expect_problem(405, "malformed");
    let r = client
        .post_raw(
            &format!("{base}/order/nope"),
            "{}".into(),
            "application/jose+json",
        )
        .await;
    r.expect_problem(400, "malformed");
}
