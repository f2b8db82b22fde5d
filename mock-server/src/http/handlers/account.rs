//! Accounts: newAccount with Sectigo's EAB rules, the account resource, keyChange.

use acme_proto::eab::{EabError, ExternalAccountBinding};
use acme_proto::{NewAccount, ProblemType, Status};
use axum::extract::{Path, State};
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use serde_json::Value;

use super::super::jose::{Authenticated, KeyMode};
use super::super::{AcmeError, AppState, ProfileCtx, repr};
use super::{JosePost, Shared, gate, json_response, with_location};
use crate::faults::Endpoint;
use crate::state::ops::KeyChangeError;
use crate::state::{Account, new_id};

/// POST newAccount (RFC 8555 §7.3) with Sectigo's EAB rules (§2).
pub(crate) async fn new_account(
    State(state): Shared,
    post: JosePost,
) -> Result<Response, AcmeError> {
    let auth = state.authenticate(&post, KeyMode::Jwk)?;
    let ctx = &post.ctx;
    let req: NewAccount = auth.payload()?;
    let thumbprint = auth.jwk.thumbprint();
    state.rate_limit(ctx, thumbprint.as_str())?;
    let scope = req
        .external_account_binding
        .as_ref()
        .and_then(|b| ExternalAccountBinding::parse(b).ok())
        .map(|e| e.kid);
    state
        .inject(
            ctx,
            Endpoint::NewAccount,
            scope.as_deref(),
            post.conn.as_ref(),
        )
        .await?;

    if let Some(existing) = state.store.account_by_key(&thumbprint)
        && existing.profile == ctx.profile.name
    {
        let body = json_response(StatusCode::OK, &repr::account(ctx, &existing));
        return Ok(with_location(body, &ctx.url("account", &existing.id)));
    }
    if req.only_return_existing == Some(true) {
        return Err(AcmeError::new(
            ProblemType::AccountDoesNotExist,
            StatusCode::BAD_REQUEST,
            "No account exists with the provided key",
        ));
    }
    if ctx.profile.account.terms_agreement_required && req.terms_of_service_agreed != Some(true) {
        let err = AcmeError::new(
            ProblemType::UserActionRequired,
            StatusCode::FORBIDDEN,
            "Provided account did not agree to the terms of service",
        );
        let link = ctx.profile.meta.terms_of_service.as_ref().and_then(|tos| {
            http::HeaderValue::from_str(&format!("<{tos}>;rel=\"terms-of-service\"")).ok()
        });
        return Err(match link {
            Some(value) => err.with_header(http::header::LINK, value),
            None => err,
        });
    }
    let contact = req.contact.clone().unwrap_or_default();
    if ctx.profile.account.contact_required && contact.is_empty() {
        // §2 [Z] (community.crypto PR#100): ZeroSSL refuses a missing email this way.
        return Err(AcmeError::new(
            ProblemType::ExternalAccountRequired,
            StatusCode::BAD_REQUEST,
            "A contact email address is required: include a \"mailto:\" contact",
        ));
    }
    for c in &contact {
        if !c.starts_with("mailto:") || c.len() <= "mailto:".len() {
            return Err(AcmeError::new(
                ProblemType::UnsupportedContact,
                StatusCode::BAD_REQUEST,
                format!("Contact {c:?} is not supported: only mailto: contacts are"),
            ));
        }
    }
    let eab_kid = match &req.external_account_binding {
        None if ctx.profile.account.eab_required => {
            // §2: Sectigo's text (Infisical PR#5578, acme.sh #5318).
            return Err(AcmeError::new(
                ProblemType::ExternalAccountRequired,
                StatusCode::BAD_REQUEST,
                "The request must include a value for the \"externalAccountBinding\" field",
            ));
        }
        None => None,
        Some(binding) => Some(state.check_eab(ctx, binding, &post.url, &auth)?),
    };
    let account = Account {
        id: new_id(),
        jwk: auth.jwk.clone(),
        status: Status::Valid,
        contact,
        terms_agreed: req.terms_of_service_agreed == Some(true),
        eab_binding: match ctx.profile.account.echo_eab && eab_kid.is_some() {
            true => req.external_account_binding.clone(),
            false => None,
        },
        eab_kid,
        profile: ctx.profile.name.clone(),
    };
    let eab_bound = account.eab_kid.is_some();
    let id = account.id.clone();
    let body = json_response(StatusCode::CREATED, &repr::account(ctx, &account));
    // Two racing newAccounts for one key: the first one wins, the second sees it.
    if let Err(existing) = state.store.create_account(account) {
        let body = json_response(StatusCode::OK, &repr::account(ctx, &existing));
        return Ok(with_location(body, &ctx.url("account", &existing.id)));
    }
    if eab_bound {
        state.store.save_orgs();
    }
    tracing::info!(account = %id, profile = %ctx.profile.name, "account created");
    Ok(with_location(body, &ctx.url("account", &id)))
}

impl AppState {
    /// Checks an EAB and claims its credential; Sectigo's texts for each refusal (§2).
    fn check_eab(
        &self,
        ctx: &ProfileCtx,
        binding: &Value,
        url: &str,
        auth: &Authenticated,
    ) -> Result<String, AcmeError> {
        let eab_malformed =
            |what: &str| AcmeError::malformed(format!("[External Account Binding] {what}"));
        let eab = ExternalAccountBinding::parse(binding).map_err(|e| match e {
            EabError::MissingKid => AcmeError::malformed("A Key ID MUST be specified"),
            EabError::Algorithm(alg) => eab_malformed(&format!(
                "The MAC algorithm {alg:?} is not supported; use HS256, HS384 or HS512"
            )),
            EabError::Nonce => eab_malformed("The JWS must not contain a nonce"),
            other => eab_malformed(&format!("The JWS is not valid: {other}")),
        })?;
        let orgs = self.store.orgs.load();
        let credential = orgs
            .credential(&eab.kid)
            .ok_or_else(|| eab_malformed("The Key Identifier was not recognized"))?;
        eab.verify(
            credential.hmac_key.expose(),
            &ctx.endpoint("newAccount"),
            &auth.jwk,
        )
        .map_err(|e| match e {
            EabError::Mac => eab_malformed("Invalid MAC on JWS request"),
            EabError::Url => eab_malformed(&format!(
                "The JWS url does not match the newAccount URL {url:?}"
            )),
            _ => eab_malformed("The JWS payload is not the account key of the request"),
        })?;
        if credential
            .revoked
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Err(AcmeError::unauthorized(
                "[External Account Binding] The credential has been revoked",
            ));
        }
        if !credential.claim() {
            return Err(eab_malformed(
                "The account is not awaiting external account binding",
            ));
        }
        Ok(credential.kid.clone())
    }
}

/// POST account/{id}: fetch, update contact, deactivate (RFC 8555 §7.3.2, §7.3.6).
pub(crate) async fn account(
    State(state): Shared,
    Path((_, id)): Path<(String, String)>,
    post: JosePost,
) -> Result<Response, AcmeError> {
    let auth = state.authenticate(&post, KeyMode::Kid)?;
    gate(&state, &post, &auth, Endpoint::Account).await?;
    let me = auth.account()?;
    if me.id != id {
        return Err(AcmeError::unauthorized(
            "The kid of the request is not the account URL it was sent to",
        ));
    }
    let mut updated = me.clone();
    if !auth.jws.post_as_get {
        let update: NewAccount = auth.payload()?;
        if let Some(contact) = update.contact {
            if let Some(bad) = contact.iter().find(|c| !c.starts_with("mailto:")) {
                return Err(AcmeError::new(
                    ProblemType::UnsupportedContact,
                    StatusCode::BAD_REQUEST,
                    format!("Contact {bad:?} is not supported: only mailto: contacts are"),
                ));
            }
            updated.contact = contact;
        }
        match update.status {
            Some(Status::Deactivated) => updated.status = Status::Deactivated,
            Some(other) => {
                return Err(AcmeError::malformed(format!(
                    "An account's status can only be set to \"deactivated\", not {:?}",
                    other.as_str()
                )));
            }
            None => {}
        }
        state.store.update_account(&id, |entry| {
            entry.contact = updated.contact.clone();
            if updated.status == Status::Deactivated {
                entry.status = Status::Deactivated;
            }
        });
    }
    let body = json_response(StatusCode::OK, &repr::account(&post.ctx, &updated));
    Ok(with_location(body, &post.ctx.url("account", &id)))
}

/// POST keyChange (RFC 8555 §7.3.5). Sectigo answers 500 "Not yet implemented" (§9, acme.sh
/// PR#7080); profiles with `key_change_supported` roll the key over.
pub(crate) async fn key_change(
    State(state): Shared,
    post: JosePost,
) -> Result<Response, AcmeError> {
    let auth = state.authenticate(&post, KeyMode::Kid)?;
    gate(&state, &post, &auth, Endpoint::KeyChange).await?;
    let ctx = &post.ctx;
    if !ctx.profile.account.key_change_supported {
        return Err(AcmeError::internal("Not yet implemented"));
    }
    let account = auth.account()?;
    let inner_raw: acme_proto::jws::FlattenedJws = auth.payload()?;
    let inner = acme_proto::Jws::from_flattened(&inner_raw)
        .map_err(|e| AcmeError::malformed(format!("keyChange inner JWS: {e}")))?;
    let new_key = inner
        .header
        .jwk
        .as_ref()
        .ok_or_else(|| {
            AcmeError::malformed("keyChange inner JWS must carry the new key as \"jwk\"")
        })
        .and_then(|j| {
            acme_proto::Jwk::from_json(j).map_err(|e| {
                AcmeError::new(
                    ProblemType::BadPublicKey,
                    StatusCode::BAD_REQUEST,
                    e.to_string(),
                )
            })
        })?;
    inner
        .verify(&new_key)
        .map_err(|e| AcmeError::malformed(format!("keyChange inner JWS: {e}")))?;
    if inner.header.url.as_deref() != Some(post.url.as_str()) {
        return Err(AcmeError::malformed(
            "keyChange inner JWS url must equal the outer url",
        ));
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct KeyChange {
        account: String,
        old_key: Value,
    }
    let body: KeyChange = serde_json::from_slice(&inner.payload)
        .map_err(|e| AcmeError::malformed(format!("keyChange inner payload: {e}")))?;
    let account_url = ctx.url("account", &account.id);
    if body.account != account_url {
        return Err(AcmeError::unauthorized(
            "keyChange inner payload names another account",
        ));
    }
    let old_key = acme_proto::Jwk::from_json(&body.old_key)
        .map_err(|e| AcmeError::malformed(format!("keyChange oldKey: {e}")))?;
    if old_key != account.jwk {
        return Err(AcmeError::unauthorized(
            "keyChange oldKey is not the account's current key",
        ));
    }
    let updated = match state
        .store
        .change_account_key(&account.id, &old_key, new_key)
    {
        Ok(updated) => updated,
        Err(KeyChangeError::InUse(holder)) => {
            let url = ctx.url("account", &holder);
            return Err(AcmeError::new(
                ProblemType::Malformed,
                StatusCode::CONFLICT,
                "The new key is already in use by an account",
            )
            .with_header(
                header::LOCATION,
                HeaderValue::from_str(&url).unwrap_or(HeaderValue::from_static("")),
            ));
        }
        Err(KeyChangeError::NoAccount) => {
            return Err(AcmeError::unauthorized("Account is not valid"));
        }
        Err(KeyChangeError::KeyChanged) => {
            return Err(AcmeError::unauthorized(
                "keyChange oldKey is not the account's current key",
            ));
        }
    };
    let body = json_response(StatusCode::OK, &repr::account(&post.ctx, &updated));
    Ok(with_location(body, &account_url))
}
