//! Request handling: one function per ACME endpoint.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use acme_proto::eab::{EabError, ExternalAccountBinding};
use acme_proto::{
    Finalize, Identifier, NewAccount, NewOrder, ProblemType, Revocation, Status, b64,
};
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::Value;
use time::OffsetDateTime;

use super::jose::{Authenticated, JosePost, KeyMode};
use super::{AcmeError, AppState, ConnControl, ProfileCtx, repr};
use crate::ca::csr;
use crate::faults::{Endpoint, FaultKind, FaultRule};
use crate::state::persist::{Kind, Row};
use crate::state::{Account, Authz, Challenge, IssuedCert, Order, new_id};

type Shared = State<Arc<AppState>>;
type Conn = Option<axum::Extension<ConnControl>>;

/// Fault injection for an authenticated request, scoped to the account's EAB credential.
async fn gate(
    state: &AppState,
    post: &JosePost,
    auth: &Authenticated,
    endpoint: Endpoint,
) -> Result<Option<FaultRule>, AcmeError> {
    let scope = auth.account.as_ref().and_then(|a| a.eab_kid.as_deref());
    state
        .inject(&post.ctx, endpoint, scope, post.conn.as_ref())
        .await
}

fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response {
    (status, Json(value)).into_response()
}

fn with_location(mut response: Response, url: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(url) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

fn with_retry_after(mut response: Response, seconds: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

fn with_link(mut response: Response, url: &str, rel: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("<{url}>;rel=\"{rel}\"")) {
        response.headers_mut().append(header::LINK, v);
    }
    response
}

/// GET /v2/{dir}: the directory. /v2/directory answers 403, as at Sectigo (§1).
pub(crate) async fn directory(
    State(state): Shared,
    Path(dir): Path<String>,
    conn: Conn,
) -> Response {
    if dir == "directory" {
        let served: Vec<&str> = state.profiles.values().map(|c| c.base.as_str()).collect();
        return AcmeError::new(
            ProblemType::Unauthorized,
            StatusCode::FORBIDDEN,
            format!(
                "There is no directory at /v2/directory: each directory is its own base URL ({})",
                served.join(", ")
            ),
        )
        .into_response();
    }
    let ctx = match state.profile(&dir) {
        Ok(ctx) => ctx,
        Err(e) => return e.into_response(),
    };
    let conn = conn.map(|c| c.0);
    match state
        .inject(&ctx, Endpoint::Directory, None, conn.as_ref())
        .await
    {
        Ok(_) => {
            let mut response = (StatusCode::OK, ctx.directory.clone()).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => e.into_response(),
    }
}

/// HEAD (200) and GET (204) newNonce (RFC 8555 §7.2); the nonce comes from the middleware.
pub(crate) async fn new_nonce(
    State(state): Shared,
    Path(dir): Path<String>,
    conn: Conn,
    req: Request,
) -> Response {
    let ctx = match state.profile(&dir) {
        Ok(ctx) => ctx,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = state.rate_limit(&ctx, "-") {
        return e.into_response();
    }
    let conn = conn.map(|c| c.0);
    if let Err(e) = state
        .inject(&ctx, Endpoint::NewNonce, None, conn.as_ref())
        .await
    {
        return e.into_response();
    }
    if req.method() == http::Method::HEAD {
        let mut response = StatusCode::OK.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        response
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

/// Any other method on a GET-only URL.
pub(crate) async fn get_only() -> Response {
    AcmeError::new(
        ProblemType::Malformed,
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed: this URL answers GET and HEAD",
    )
    .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"))
    .into_response()
}

/// GET (or anything but POST) on an ACME resource: POST-as-GET is enforced (§4).
pub(crate) async fn post_only() -> Response {
    AcmeError::new(
        ProblemType::Malformed,
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed: ACME resources are fetched with POST-as-GET (RFC 8555 §6.3)",
    )
    .with_header(header::ALLOW, HeaderValue::from_static("POST"))
    .into_response()
}

/// Anything outside the served URLs.
pub(crate) async fn not_found(req: Request) -> Response {
    AcmeError::new(
        ProblemType::Malformed,
        StatusCode::NOT_FOUND,
        format!("Nothing is served at {}", req.uri().path()),
    )
    .into_response()
}

fn now_utc() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

// ---------------------------------------------------------------- accounts

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

    if let Some(id) = state
        .store
        .account_keys
        .get(&thumbprint)
        .map(|id| id.clone())
        && let Some(existing) = state.store.accounts.get(&id).map(|a| a.clone())
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
        eab_kid,
        profile: ctx.profile.name.clone(),
    };
    let eab_bound = account.eab_kid.is_some();
    let id = account.id.clone();
    // Two racing newAccounts for one key: the first one wins, the second sees it.
    let winner = state
        .store
        .account_keys
        .entry(thumbprint)
        .or_insert_with(|| id.clone())
        .clone();
    if winner != id {
        let existing = state.store.accounts.get(&winner).map(|a| a.clone());
        if let Some(existing) = existing {
            let body = json_response(StatusCode::OK, &repr::account(ctx, &existing));
            return Ok(with_location(body, &ctx.url("account", &winner)));
        }
    }
    let body = json_response(StatusCode::CREATED, &repr::account(ctx, &account));
    state
        .store
        .save(|| vec![Row::new(Kind::Account, &id, &account)]);
    state.store.accounts.insert(id.clone(), account);
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
        let saved = state.store.accounts.get_mut(&id).map(|mut entry| {
            entry.contact = updated.contact.clone();
            if updated.status == Status::Deactivated {
                entry.status = Status::Deactivated;
            }
            state
                .store
                .persisting()
                .then(|| Row::new(Kind::Account, &id, &*entry))
        });
        state.store.save(|| saved.flatten().into_iter().collect());
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
    let new_tp = new_key.thumbprint();
    match state.store.account_keys.entry(new_tp) {
        dashmap::Entry::Occupied(taken) => {
            let url = ctx.url("account", taken.get());
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
        dashmap::Entry::Vacant(slot) => {
            slot.insert(account.id.clone());
        }
    }
    state.store.account_keys.remove(&account.jwk.thumbprint());
    let updated = state.store.accounts.get_mut(&account.id).map(|mut a| {
        a.jwk = new_key;
        a.clone()
    });
    let updated = updated.ok_or_else(|| AcmeError::unauthorized("Account is not valid"))?;
    state
        .store
        .save(|| vec![Row::new(Kind::Account, &updated.id, &updated)]);
    let body = json_response(StatusCode::OK, &repr::account(&post.ctx, &updated));
    Ok(with_location(body, &account_url))
}

// ---------------------------------------------------------------- orders

/// Whether `name` is a syntactically valid DNS name (optionally `*.`-prefixed).
fn valid_dns_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.contains('.')
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// POST newOrder (RFC 8555 §7.4): identifiers checked against the account's delegation (§3).
pub(crate) async fn new_order(State(state): Shared, post: JosePost) -> Result<Response, AcmeError> {
    let auth = state.authenticate(&post, KeyMode::Kid)?;
    let account = auth.account()?;
    let ctx = &post.ctx;
    state.rate_limit(ctx, &account.id)?;
    gate(&state, &post, &auth, Endpoint::NewOrder).await?;
    let req: NewOrder = auth.payload()?;
    if req.identifiers.is_empty() {
        return Err(AcmeError::malformed(
            "The order must contain at least one identifier",
        ));
    }
    if req.not_before.is_some() || req.not_after.is_some() {
        // §7: notBefore/notAfter in newOrder are not supported.
        return Err(AcmeError::malformed(
            "notBefore and notAfter are not supported",
        ));
    }
    let mut names = Vec::with_capacity(req.identifiers.len());
    for id in &req.identifiers {
        match id.kind.as_str() {
            "dns" => {}
            // §3 [Z] (lego #2222, acme.sh #4022).
            "ip" => {
                return Err(AcmeError::new(
                    ProblemType::UnsupportedIdentifier,
                    StatusCode::BAD_REQUEST,
                    "IPv4 and IPv6 identifier types are not yet supported",
                ));
            }
            other => {
                return Err(AcmeError::new(
                    ProblemType::UnsupportedIdentifier,
                    StatusCode::BAD_REQUEST,
                    format!("Identifier type {other:?} is not supported"),
                ));
            }
        }
        let name = id.value.to_ascii_lowercase();
        if !valid_dns_name(&name) {
            return Err(AcmeError::rejected_identifier(format!(
                "{:?} is not a valid DNS name",
                id.value
            )));
        }
        names.push(name);
    }
    let unique: BTreeSet<&String> = names.iter().collect();
    if unique.len() != names.len() {
        // §3 [Z] (acme.sh #3268).
        return Err(AcmeError::rejected_identifier(
            "One or more identifiers are duplicated",
        ));
    }
    let orgs = state.store.orgs.load();
    let credential = account
        .eab_kid
        .as_deref()
        .and_then(|kid| orgs.credential(kid));
    let delegation_required = ctx.profile.order.delegation == crate::profile::Delegation::Required;
    let undelegated: Vec<&String> = names
        .iter()
        .filter(|n| delegation_required && !credential.is_some_and(|c| c.covers(n)))
        .collect();
    if !undelegated.is_empty() {
        // §3 [S]: Sectigo's sentence, then the names so that the administrator knows which.
        let list: Vec<&str> = undelegated.iter().map(|s| s.as_str()).collect();
        let mut err = AcmeError::rejected_identifier(format!(
            "A requested identifier has not been delegated. Not delegated to this ACME account: {}",
            list.join(", ")
        ));
        err.problem_mut().subproblems = undelegated
            .iter()
            .map(|n| {
                let mut p = acme_proto::Problem::new(
                    ProblemType::RejectedIdentifier,
                    400,
                    format!("{n} has not been delegated to this ACME account"),
                );
                p.identifier = Some(Identifier::dns(n.as_str()));
                p
            })
            .collect();
        return Err(err);
    }
    let owners: BTreeSet<Option<usize>> = names.iter().map(|n| orgs.owner_of(n)).collect();
    if delegation_required && owners.len() > 1 {
        // §3 [S] (win-acme #1644 #2374).
        return Err(AcmeError::rejected_identifier(
            "The identifiers are not all linked to the same preauthorized Subject organization name/address",
        ));
    }

    let now = now_utc();
    let order_id = new_id();
    let mut authz_ids = Vec::with_capacity(names.len());
    let order_profile = &ctx.profile.order;
    let mut all_valid = true;
    for (name, id) in names.iter().zip(&req.identifiers) {
        let authz_id = new_id();
        let (wildcard, base) = match name.strip_prefix("*.") {
            Some(base) => (true, base),
            None => (false, name.as_str()),
        };
        // §3 [S]: delegated, validated domains come back valid (acme2certifier #122) unless
        // persistent DCV is on; other names get real challenges.
        let validated = orgs.domain_of(name).is_some_and(|d| d.validated);
        let prevalidated = delegation_required
            && order_profile.prevalidated
            && validated
            && !order_profile.persistent_dcv;
        let mut challenges = Vec::new();
        if prevalidated {
            let chall_id = new_id();
            state.store.challenges.insert(
                chall_id.clone(),
                Challenge {
                    id: chall_id.clone(),
                    authz: authz_id.clone(),
                    kind: order_profile.prevalidated_challenge_type.clone(),
                    status: Status::Valid,
                    token: None,
                    validated: Some(now),
                    error: None,
                },
            );
            challenges.push(chall_id);
        } else {
            all_valid = false;
            let token = new_token();
            // Wildcards are proved by dns-01 only (RFC 8555 §8.3); persistent DCV is dns-01.
            let kinds: Vec<&str> = if wildcard || order_profile.persistent_dcv {
                vec!["dns-01"]
            } else {
                order_profile
                    .challenge_types
                    .iter()
                    .map(String::as_str)
                    .collect()
            };
            for kind in kinds {
                let chall_id = new_id();
                state.store.challenges.insert(
                    chall_id.clone(),
                    Challenge {
                        id: chall_id.clone(),
                        authz: authz_id.clone(),
                        kind: kind.to_owned(),
                        status: Status::Pending,
                        token: Some(token.clone()),
                        validated: None,
                        error: None,
                    },
                );
                challenges.push(chall_id);
            }
        }
        state.store.authzs.insert(
            authz_id.clone(),
            Authz {
                id: authz_id.clone(),
                account: account.id.clone(),
                identifier: Identifier {
                    kind: id.kind.clone(),
                    value: base.to_owned(),
                },
                wildcard,
                status: if prevalidated {
                    Status::Valid
                } else {
                    Status::Pending
                },
                expires: now + time::Duration::days(30),
                challenges,
            },
        );
        authz_ids.push(authz_id);
    }
    // A credential revoked while this request was in flight stops it here, before it commits.
    state.check_account_usable(account)?;
    let order = Order {
        id: order_id.clone(),
        account: account.id.clone(),
        status: if all_valid {
            Status::Ready
        } else {
            Status::Pending
        },
        identifiers: names.iter().map(|n| Identifier::dns(n.as_str())).collect(),
        authzs: authz_ids,
        expires: now + time::Duration::days(7),
        ready_at: None,
        retry_after: None,
        cert: None,
        error: None,
    };
    let body = json_response(
        StatusCode::CREATED,
        &repr::order(ctx, &order, state.order_status(&order)),
    );
    // The order, its authorizations and their challenges in one transaction.
    state.store.save(|| {
        let mut rows = vec![Row::new(Kind::Order, &order_id, &order)];
        for authz_id in &order.authzs {
            if let Some(a) = state.store.authzs.get(authz_id) {
                rows.push(Row::new(Kind::Authz, authz_id, &*a));
                for c in &a.challenges {
                    if let Some(c) = state.store.challenges.get(c) {
                        rows.push(Row::new(Kind::Challenge, &c.id, &*c));
                    }
                }
            }
        }
        rows
    });
    state.store.orders.insert(order_id.clone(), order);
    Ok(with_location(body, &ctx.url("order", &order_id)))
}

fn owned_order(state: &AppState, id: &str, account: &Account) -> Result<Order, AcmeError> {
    owned(&state.store.orders, id, account, "Order", |o| &o.account)
}

/// A resource of `map` by id, if it belongs to `account`: 404 when there is none, 403 when it
/// is another account's.
fn owned<T: Clone>(
    map: &crate::state::Map<String, T>,
    id: &str,
    account: &Account,
    what: &str,
    owner: impl Fn(&T) -> &String,
) -> Result<T, AcmeError> {
    let item = map.get(id).map(|i| i.clone()).ok_or_else(|| {
        AcmeError::new(
            ProblemType::Malformed,
            StatusCode::NOT_FOUND,
            format!("{what} not found"),
        )
    })?;
    if owner(&item) != &account.id {
        return Err(AcmeError::unauthorized(format!(
            "This {} belongs to another account",
            what.to_ascii_lowercase()
        )));
    }
    Ok(item)
}

fn order_response(
    state: &AppState,
    ctx: &ProfileCtx,
    order: &Order,
    status: StatusCode,
) -> Response {
    let current = state.order_status(order);
    let body = json_response(status, &repr::order(ctx, order, current));
    let body = with_location(body, &ctx.url("order", &order.id));
    if current == Status::Processing {
        let seconds = order
            .retry_after
            .unwrap_or(ctx.profile.order.processing_retry_after);
        with_retry_after(body, seconds)
    } else {
        body
    }
}

/// POST-as-GET order/{id}.
pub(crate) async fn order(
    State(state): Shared,
    Path((_, id)): Path<(String, String)>,
    post: JosePost,
) -> Result<Response, AcmeError> {
    let auth = state.authenticate(&post, KeyMode::Kid)?;
    gate(&state, &post, &auth, Endpoint::Order).await?;
    require_post_as_get(&auth)?;
    let order = owned_order(&state, &id, auth.account()?)?;
    Ok(order_response(&state, &post.ctx, &order, StatusCode::OK))
}

fn require_post_as_get(auth: &Authenticated) -> Result<(), AcmeError> {
    if auth.jws.post_as_get {
        Ok(())
    } else {
        Err(AcmeError::malformed(
            "This resource is fetched with POST-as-GET: the payload must be empty",
        ))
    }
}

/// POST order/{id}/finalize (RFC 8555 §7.4): CSR checks, then `processing` (§5, §7).
pub(crate) async fn finalize(
    State(state): Shared,
    Path((_, id)): Path<(String, String)>,
    post: JosePost,
) -> Result<Response, AcmeError> {
    let auth = state.authenticate(&post, KeyMode::Kid)?;
    let account = auth.account()?;
    let ctx = &post.ctx;
    let fault = gate(&state, &post, &auth, Endpoint::Finalize).await?;
    let order = owned_order(&state, &id, account)?;
    let status = state.order_status(&order);
    if status != Status::Ready {
        return Err(AcmeError::new(
            ProblemType::OrderNotReady,
            StatusCode::FORBIDDEN,
            format!(
                "Order is not ready to be finalized: its status is \"{}\"",
                status.as_str()
            ),
        ));
    }
    let req: Finalize = auth.payload()?;
    let der = b64::decode(&req.csr)
        .map_err(|_| AcmeError::malformed("The \"csr\" field is not base64url"))?;
    let checked = csr::check(&der).map_err(|e| AcmeError::bad_csr(e.to_string()))?;
    let wanted: BTreeSet<String> = order.identifiers.iter().map(|i| i.value.clone()).collect();
    if checked.names != wanted {
        let got: Vec<&str> = checked.names.iter().map(String::as_str).collect();
        let want: Vec<&str> = wanted.iter().map(String::as_str).collect();
        return Err(AcmeError::bad_csr(format!(
            "The CSR's names ({}) do not match the order's identifiers ({})",
            got.join(", "),
            want.join(", ")
        )));
    }
    if checked.jwk.as_ref() == Some(&account.jwk) {
        return Err(AcmeError::bad_csr(
            "The CSR's public key must not be the account key",
        ));
    }
    let orgs = state.store.orgs.load();
    let org = account
        .eab_kid
        .as_deref()
        .and_then(|kid| orgs.credential(kid))
        .and_then(|c| orgs.organizations.get(c.org));
    let (org, policy) = match ctx.profile.order.subject {
        crate::profile::SubjectStyle::Ov if org.is_some() => (org, crate::ca::CertPolicy::Ov),
        crate::profile::SubjectStyle::Ev if org.is_some() => (org, crate::ca::CertPolicy::Ev),
        _ => (None, crate::ca::CertPolicy::Dv),
    };
    let names: Vec<String> = order.identifiers.iter().map(|i| i.value.clone()).collect();
    let issued = state
        .ca
        .issue(
            &checked,
            &names,
            org,
            policy,
            ctx.profile.order.validity_days,
        )
        .map_err(|e| {
            tracing::error!(error = %e, "issuance failed");
            AcmeError::internal("The server experienced an internal error")
        })?;
    let cert_id = new_id();
    // A credential revoked while this request was in flight stops it here, before it commits.
    state.check_account_usable(account)?;
    // §5: a `processing` fault stretches the wait (Sectigo: 15-60 s, sometimes hours).
    let (processing_ms, retry_after) = match &fault {
        Some(rule) if rule.fault == FaultKind::Processing => (
            rule.seconds.unwrap_or(0) * 1000,
            rule.retry_after
                .or(Some(ctx.profile.order.processing_retry_after)),
        ),
        _ => (ctx.profile.order.processing_ms, None),
    };
    let ready_at = now_utc() + Duration::from_millis(processing_ms);
    let claimed = match state.store.orders.get_mut(&id) {
        Some(mut live) if state.order_status(&live) == Status::Ready => {
            live.status = Status::Processing;
            live.ready_at = Some(ready_at);
            live.retry_after = retry_after;
            live.cert = Some(cert_id.clone());
            Some(live.clone())
        }
        _ => None,
    };
    let Some(updated) = claimed else {
        return Err(AcmeError::new(
            ProblemType::OrderNotReady,
            StatusCode::FORBIDDEN,
            "Order is not ready to be finalized: it was finalized concurrently",
        ));
    };
    let leaf_der = issued.leaf_der;
    state
        .store
        .certs_by_der
        .insert(crate::state::der_key(&leaf_der), cert_id.clone());
    let (ari_id, not_before, not_after) = leaf_facts(&leaf_der);
    if let Some(ari_id) = &ari_id {
        state
            .store
            .certs_by_ari
            .insert(ari_id.clone(), cert_id.clone());
    }
    let cert = IssuedCert {
        id: cert_id.clone(),
        account: account.id.clone(),
        names: names.clone(),
        serial: issued.serial,
        order: id.clone(),
        leaf_pem: issued.leaf_pem,
        family: issued.family,
        leaf_der,
        key: checked.jwk,
        revoked: None,
        ari_id,
        not_before,
        not_after,
    };
    // The certificate and the order that points at it, together: after a crash either the
    // order is still ready or it is processing with its certificate on disk.
    state.store.save(|| {
        vec![
            Row::new(Kind::Cert, &cert_id, &cert),
            Row::new(Kind::Order, &id, &updated),
        ]
    });
    state.store.certs.insert(cert_id, cert);
    tracing::info!(order = %id, names = ?names, "order finalized");
    Ok(order_response(&state, ctx, &updated, StatusCode::OK))
}

// ---------------------------------------------------------------- authorizations

fn owned_authz(state: &AppState, id: &str, account: &Account) -> Result<Authz, AcmeError> {
    owned(&state.store.authzs, id, account, "Authorization", |a| {
        &a.account
    })
}

fn authz_response(state: &AppState, ctx: &ProfileCtx, authz: &Authz) -> Response {
    let challenges = authz
        .challenges
        .iter()
        .filter_map(|id| {
            state
                .store
                .challenges
                .get(id)
                .map(|c| repr::challenge(ctx, &c))
        })
        .collect();
    let body = json_response(StatusCode::OK, &repr::authz(authz, challenges));
    match ctx.profile.order.prevalidated_authz_retry_after {
        Some(seconds) if authz.status == Status::Valid => with_retry_after(body, seconds),
        _ => body,
    }
}

/// POST authz/{id}: fetch or deactivate (RFC 8555 §7.5, §7.5.2).
pub(crate) async fn authz(
    State(state): Shared,
    Path((_, id)): Path<(String, String)>,
    post: JosePost,
) -> Result<Response, AcmeError> {
    let auth = state.authenticate(&post, KeyMode::Kid)?;
    state.rate_limit(&post.ctx, &auth.account()?.id)?;
    gate(&state, &post, &auth, Endpoint::Authz).await?;
    let mut authz = owned_authz(&state, &id, auth.account()?)?;
    if !auth.jws.post_as_get {
        let update: Value = auth.payload()?;
        if update.get("status").and_then(Value::as_str) != Some("deactivated") {
            return Err(AcmeError::malformed(
                "An authorization can only be updated to {\"status\":\"deactivated\"}",
            ));
        }
        if let Some(mut live) = state.store.authzs.get_mut(&id) {
            live.status = Status::Deactivated;
            authz = live.clone();
        }
        state
            .store
            .save(|| vec![Row::new(Kind::Authz, &id, &authz)]);
    }
    Ok(authz_response(&state, &post.ctx, &authz))
}

/// POST chall/{id}: fetch (POST-as-GET) or respond (`{}`) (RFC 8555 §7.5.1). Responding to a
/// pending challenge starts real validation (RFC 8555 §8) in the background.
pub(crate) async fn challenge(
    State(state): Shared,
    Path((_, id)): Path<(String, String)>,
    post: JosePost,
) -> Result<Response, AcmeError> {
    let auth = state.authenticate(&post, KeyMode::Kid)?;
    let fault = gate(&state, &post, &auth, Endpoint::Challenge).await?;
    let not_found = || {
        AcmeError::new(
            ProblemType::Malformed,
            StatusCode::NOT_FOUND,
            "Challenge not found",
        )
    };
    let mut challenge = state
        .store
        .challenges
        .get(&id)
        .map(|c| c.clone())
        .ok_or_else(not_found)?;
    let account = auth.account()?;
    let authz = owned_authz(&state, &challenge.authz, account)?;
    if !auth.jws.post_as_get {
        let _: Value = auth.payload()?;
        let claimed = if authz.status == Status::Pending {
            state.store.challenges.get_mut(&id).and_then(|mut c| {
                (c.status == Status::Pending).then(|| {
                    c.status = Status::Processing;
                    c.clone()
                })
            })
        } else {
            None
        };
        if let Some(claimed) = claimed {
            challenge = claimed.clone();
            let thumbprint = account.jwk.thumbprint();
            let (state, ctx) = (state.clone(), post.ctx.clone());
            tokio::spawn(async move {
                validate_challenge(&state, &ctx, claimed, authz, thumbprint, fault).await;
            });
        }
    }
    let ctx = &post.ctx;
    let body = json_response(StatusCode::OK, &repr::challenge(ctx, &challenge));
    let body = match ctx.profile.order.challenge_retry_after {
        Some(seconds) if challenge.status == Status::Processing => with_retry_after(body, seconds),
        _ => body,
    };
    // §10: rel="up" to the authorization on challenges.
    Ok(with_link(body, &ctx.url("authz", &challenge.authz), "up"))
}

/// Validates a challenge and settles it and its authorization.
async fn validate_challenge(
    state: &AppState,
    ctx: &ProfileCtx,
    challenge: Challenge,
    authz: Authz,
    thumbprint: acme_proto::Thumbprint,
    fault: Option<FaultRule>,
) {
    // §5 [Z]: challenges can sit in processing (acme.sh #3805).
    if let Some(rule) = fault.as_ref().filter(|r| r.fault == FaultKind::Processing) {
        tokio::time::sleep(Duration::from_secs(rule.seconds.unwrap_or(0))).await;
    }
    let name = authz.identifier.value.clone();
    let invalid_fault = fault
        .as_ref()
        .is_some_and(|r| r.fault == FaultKind::InvalidChallenge);
    let outcome: Result<(), Option<acme_proto::Problem>> = if invalid_fault {
        // §8 [Z] (acme.sh #4768): invalid with "error": {}.
        Err(None)
    } else if ctx.profile.order.danger_skip_validation {
        // Benchmarks only (Pebble's PEBBLE_VA_ALWAYS_VALID): no fetch, no DNS, no CAA.
        Ok(())
    } else {
        let validator = state.validator.clone();
        let identities = ctx.profile.meta.caa_identities.clone();
        let (kind, token, wildcard) = (
            challenge.kind.clone(),
            challenge.token.clone().unwrap_or_default(),
            authz.wildcard,
        );
        let name = name.clone();
        // Its own task: whatever happens inside, the challenge is settled below.
        let run = tokio::spawn(async move {
            let key_auth = acme_proto::KeyAuthorization::new(&token, &thumbprint);
            validator.validate(&kind, &name, &token, &key_auth).await?;
            validator.check_caa(&name, wildcard, &identities).await
        });
        match run.await {
            Ok(result) => result.map_err(Some),
            Err(e) => {
                tracing::error!(error = %e, "challenge validation failed unexpectedly");
                Err(Some(acme_proto::Problem::new(
                    ProblemType::ServerInternal,
                    500,
                    "The server experienced an internal error during validation",
                )))
            }
        }
    };
    let now = now_utc();
    let (challenge_status, authz_status, error) = match outcome {
        Ok(()) => (Status::Valid, Status::Valid, None),
        Err(None) => (
            Status::Invalid,
            Status::Invalid,
            Some(serde_json::json!({})),
        ),
        Err(Some(p)) => (
            Status::Invalid,
            Status::Invalid,
            serde_json::to_value(&p).ok(),
        ),
    };
    tracing::info!(challenge = %challenge.id, kind = %challenge.kind, %name, status = challenge_status.as_str(), "challenge validated");
    if let Some(mut c) = state.store.challenges.get_mut(&challenge.id) {
        c.status = challenge_status;
        c.error = error;
        if challenge_status == Status::Valid {
            c.validated = Some(now);
        }
    }
    if let Some(mut a) = state.store.authzs.get_mut(&authz.id)
        && a.status == Status::Pending
    {
        a.status = authz_status;
    }
    state.store.save(|| {
        let mut rows = Vec::new();
        if let Some(c) = state.store.challenges.get(&challenge.id) {
            rows.push(Row::new(Kind::Challenge, &c.id, &*c));
        }
        if let Some(a) = state.store.authzs.get(&authz.id) {
            rows.push(Row::new(Kind::Authz, &a.id, &*a));
        }
        rows
    });
}

/// POST-as-GET account/{id}/orders (RFC 8555 §7.1.2.1), where the profile has order lists.
pub(crate) async fn orders_list(
    State(state): Shared,
    Path((_, id)): Path<(String, String)>,
    post: JosePost,
) -> Result<Response, AcmeError> {
    let auth = state.authenticate(&post, KeyMode::Kid)?;
    require_post_as_get(&auth)?;
    let account = auth.account()?;
    if account.id != id {
        return Err(AcmeError::unauthorized(
            "This order list belongs to another account",
        ));
    }
    if !post.ctx.profile.account.orders_list {
        return Err(AcmeError::new(
            ProblemType::Malformed,
            StatusCode::NOT_FOUND,
            "This server has no order lists",
        ));
    }
    let mut orders: Vec<String> = state
        .store
        .orders
        .iter()
        .filter(|o| o.account == id)
        .map(|o| post.ctx.url("order", &o.id))
        .collect();
    orders.sort();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "orders": orders }),
    ))
}

// ---------------------------------------------------------------- certificates

async fn certificate_at(
    state: &AppState,
    post: JosePost,
    id: &str,
    index: usize,
) -> Result<Response, AcmeError> {
    let auth = state.authenticate(&post, KeyMode::Kid)?;
    gate(state, &post, &auth, Endpoint::Certificate).await?;
    require_post_as_get(&auth)?;
    let account = auth.account()?;
    let not_found = || {
        AcmeError::new(
            ProblemType::Malformed,
            StatusCode::NOT_FOUND,
            "Certificate not found",
        )
    };
    let cert = state
        .store
        .certs
        .get(id)
        .map(|c| c.clone())
        .ok_or_else(not_found)?;
    if cert.account != account.id {
        return Err(AcmeError::unauthorized(
            "This certificate belongs to another account",
        ));
    }
    // Not visible until the order it belongs to is valid.
    let visible = state
        .store
        .orders
        .get(&cert.order)
        .is_some_and(|o| o.status_at(now_utc()) == Status::Valid);
    let pem = state
        .ca
        .chain(&cert.leaf_pem, cert.family, index)
        .filter(|_| visible)
        .ok_or_else(not_found)?;
    let mut response = (StatusCode::OK, pem).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pem-certificate-chain"),
    );
    let ctx = &post.ctx;
    for other in (0..crate::ca::Ca::CHAINS).filter(|i| *i != index) {
        let url = if other == 0 {
            ctx.url("cert", id)
        } else {
            format!("{}/{other}", ctx.url("cert", id))
        };
        response = with_link(response, &url, "alternate");
    }
    Ok(response)
}

/// POST-as-GET cert/{id}: the default chain (RFC 8555 §7.4.2).
pub(crate) async fn certificate(
    State(state): Shared,
    Path((_, id)): Path<(String, String)>,
    post: JosePost,
) -> Result<Response, AcmeError> {
    certificate_at(&state, post, &id, 0).await
}

/// POST-as-GET cert/{id}/{n}: an alternate chain.
pub(crate) async fn certificate_alternate(
    State(state): Shared,
    Path((_, id, n)): Path<(String, String, String)>,
    post: JosePost,
) -> Result<Response, AcmeError> {
    let index = n.parse::<usize>().ok().filter(|i| *i > 0).ok_or_else(|| {
        AcmeError::new(
            ProblemType::Malformed,
            StatusCode::NOT_FOUND,
            "Certificate not found",
        )
    })?;
    certificate_at(&state, post, &id, index).await
}

/// POST revokeCert (RFC 8555 §7.6), by the owning account or by the certificate's key.
pub(crate) async fn revoke_cert(
    State(state): Shared,
    post: JosePost,
) -> Result<Response, AcmeError> {
    let auth = state.authenticate(&post, KeyMode::Either)?;
    gate(&state, &post, &auth, Endpoint::RevokeCert).await?;
    let req: Revocation = auth.payload()?;
    let der = b64::decode(&req.certificate)
        .map_err(|_| AcmeError::malformed("The \"certificate\" field is not base64url"))?;
    let id = state
        .store
        .certs_by_der
        .get(&crate::state::der_key(&der))
        .map(|id| id.clone())
        .ok_or_else(|| {
            AcmeError::new(
                ProblemType::Malformed,
                StatusCode::NOT_FOUND,
                "Certificate not found: it was not issued by this server",
            )
        })?;
    let reason = req.reason.unwrap_or(0);
    if !matches!(reason, 0 | 1 | 3 | 4 | 5 | 9) {
        return Err(AcmeError::new(
            ProblemType::BadRevocationReason,
            StatusCode::BAD_REQUEST,
            format!("Revocation reason {reason} is not allowed; use 0, 1, 3, 4, 5 or 9"),
        ));
    }
    let mut cert = state
        .store
        .certs
        .get_mut(&id)
        .ok_or_else(|| AcmeError::internal("The server experienced an internal error"))?;
    let authorised = match &auth.account {
        Some(account) => cert.account == account.id,
        None => cert.key.as_ref() == Some(&auth.jwk),
    };
    if !authorised {
        return Err(AcmeError::unauthorized(
            "The request is signed neither by the account that owns the certificate nor by the certificate's key",
        ));
    }
    if cert.revoked.is_some() {
        return Err(AcmeError::new(
            ProblemType::AlreadyRevoked,
            StatusCode::BAD_REQUEST,
            "Certificate already revoked",
        ));
    }
    cert.revoked = Some(reason);
    // Serialized under the entry's lock, written after it is released.
    let row = state
        .store
        .persisting()
        .then(|| Row::new(Kind::Cert, &id, &*cert));
    drop(cert);
    state.store.save(|| row.into_iter().collect());
    tracing::info!(cert = %id, reason, "certificate revoked");
    Ok(StatusCode::OK.into_response())
}

/// The ARI identifier (base64url AKI "." base64url serial), notBefore and notAfter of a leaf.
fn leaf_facts(der: &[u8]) -> (Option<String>, OffsetDateTime, OffsetDateTime) {
    use x509_parser::prelude::*;
    let Ok((_, c)) = X509Certificate::from_der(der) else {
        let now = now_utc();
        return (None, now, now);
    };
    let aki = c
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        });
    let id = aki.map(|a| format!("{}.{}", b64::encode(a), b64::encode(c.raw_serial())));
    (
        id,
        c.validity().not_before.to_datetime(),
        c.validity().not_after.to_datetime(),
    )
}

/// GET renewalInfo/{id} (RFC 9773 §4.2): the suggested window is the middle of the last third
/// of the validity; a revoked certificate's window is already open.
pub(crate) async fn renewal_info(
    State(state): Shared,
    Path((dir, id)): Path<(String, String)>,
) -> Result<Response, AcmeError> {
    let ctx = state.profile(&dir)?;
    let not_found = || {
        AcmeError::new(
            ProblemType::Malformed,
            StatusCode::NOT_FOUND,
            "No certificate has that renewalInfo identifier",
        )
    };
    if !ctx.profile.renewal_info {
        return Err(not_found());
    }
    let cert_id = state
        .store
        .certs_by_ari
        .get(&id)
        .map(|c| c.clone())
        .ok_or_else(not_found)?;
    let cert = state
        .store
        .certs
        .get(&cert_id)
        .map(|c| c.clone())
        .ok_or_else(not_found)?;
    let lifetime = cert.not_after - cert.not_before;
    let (start, end) = if cert.revoked.is_some() {
        let now = now_utc();
        (
            now - time::Duration::hours(1),
            now + time::Duration::hours(1),
        )
    } else {
        let start = cert.not_after - lifetime / 3;
        (start, start + lifetime / 9)
    };
    let body = serde_json::json!({
        "suggestedWindow": { "start": repr::timestamp(start), "end": repr::timestamp(end) }
    });
    Ok(with_retry_after(
        json_response(StatusCode::OK, &body),
        21600,
    ))
}

/// A challenge token: 32 random bytes, base64url (RFC 8555 §8.1 asks for 128 bits at least).
fn new_token() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    b64::encode(bytes)
}
