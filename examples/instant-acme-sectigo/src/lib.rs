//! A small program a department might write with instant-acme: get a certificate from
//! Sectigo's ACME service (InCommon) for names delegated to its EAB credential. Its test, in
//! tests/, runs it against the embedded mock with a fault plan and grades what it sent.

use std::path::Path;

use instant_acme::{
    Account, AuthorizationStatus, ExternalAccountKey, Identifier, NewAccount, NewOrder,
    OrderStatus, RetryPolicy,
};

/// What the program needs: Sectigo's directory, the EAB credential, the names.
#[derive(Debug)]
pub struct Request<'a> {
    /// The directory URL, e.g. `https://acme.sectigo.com/v2/InCommonRSAOV`.
    pub directory_url: &'a str,
    /// A PEM file of the CA that signs the ACME server's HTTPS certificate, for a private test
    /// CA; `None` trusts the usual web roots.
    pub server_root: Option<&'a Path>,
    /// The EAB key id.
    pub eab_kid: &'a str,
    /// The EAB HMAC key's bytes.
    pub eab_hmac_key: &'a [u8],
    /// The names, each delegated to the credential.
    pub names: &'a [&'a str],
}

/// A certificate and its key.
#[derive(Debug)]
pub struct Certificate {
    /// The chain, PEM, leaf first.
    pub chain_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
}

/// Registers an account with the EAB credential and issues a certificate for the names.
/// Sectigo pre-validates delegated names, so no challenge is answered: an authorization
/// that is not already valid is an error.
pub async fn issue(request: &Request<'_>) -> Result<Certificate, instant_acme::Error> {
    let builder = match request.server_root {
        Some(root) => Account::builder_with_root(root)?,
        None => Account::builder()?,
    };
    let eab = ExternalAccountKey::new(request.eab_kid.to_owned(), request.eab_hmac_key);
    let (account, _credentials) = builder
        .create(
            &NewAccount {
                contact: &["mailto:hostmaster@example.edu"],
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            request.directory_url.to_owned(),
            Some(&eab),
        )
        .await?;
    let identifiers: Vec<Identifier> = request
        .names
        .iter()
        .map(|name| Identifier::Dns((*name).to_owned()))
        .collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let authz = authz?;
        if authz.status != AuthorizationStatus::Valid {
            return Err(instant_acme::Error::Str(
                "a name is not pre-validated: delegate it to the ACME account first",
            ));
        }
    }
    // Sectigo keeps an order `processing` for a while after finalize and says when to come
    // back (Retry-After); instant-acme's polling honours it within this time limit.
    let patience = RetryPolicy::new().timeout(std::time::Duration::from_secs(120));
    if order.poll_ready(&patience).await? != OrderStatus::Ready {
        return Err(instant_acme::Error::Str("the order did not become ready"));
    }
    let key_pem = order.finalize().await?;
    let chain_pem = order.poll_certificate(&patience).await?;
    Ok(Certificate { chain_pem, key_pem })
}
