//! The POST pipeline every ACME request goes through (RFC 8555 §6.2-§6.5): content type, JWS
//! shape, `url`, algorithm, `jwk`/`kid`, signature, nonce, account status.

use std::sync::Arc;

use acme_proto::jws::SignatureAlgorithm;
use acme_proto::{JOSE_CONTENT_TYPE, Jwk, Jws, JwsError, ProblemType, Status};
use axum::body::Body;
use axum::extract::{FromRequest, Request};
use http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt as _;

use super::{AcmeError, AppState, ProfileCtx};
use crate::state::Account;
use crate::state::nonce::NonceError;

/// A POST to an ACME endpoint, before authentication.
#[derive(Debug)]
pub(crate) struct JosePost {
    /// The profile the URL belongs to.
    pub ctx: Arc<ProfileCtx>,
    /// The full request URL, as the JWS `url` must name it.
    pub url: String,
    /// The body.
    pub body: bytes::Bytes,
    /// Closes the connection for the `drop` fault.
    pub conn: Option<super::ConnControl>,
}

impl FromRequest<Arc<AppState>> for JosePost {
    type Rejection = AcmeError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let path = req.uri().path().to_owned();
        // The JWS `url` names the query too (an order list's `?cursor=N` page).
        let query = req
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let sent = req
            .extensions()
            .get::<super::SentPath>()
            .map(|p| p.0.clone());
        let slug = path
            .strip_prefix("/v2/")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_default();
        // `strict.require_user_agent` is checked for every ACME request, before this
        // (`super::user_agent_refusal`).
        let ctx = state.profile(slug)?;
        let conn = req.extensions().get::<super::ConnControl>().cloned();
        check_content_type(req.headers())?;
        // The recorder has read and limited the body already; this only takes the bytes.
        let body = read_body(req.into_body(), state.limits.max_body_bytes).await?;
        Ok(Self {
            ctx,
            url: format!("{}{}{query}", state.origin, sent.unwrap_or(path)),
            body,
            conn,
        })
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), AcmeError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = ct.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case(JOSE_CONTENT_TYPE) {
        Ok(())
    } else {
        Err(AcmeError::new(
            ProblemType::Malformed,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Invalid Content-Type header on POST: Content-Type must be \"{JOSE_CONTENT_TYPE}\""
            ),
        ))
    }
}

async fn read_body(body: Body, max: usize) -> Result<bytes::Bytes, AcmeError> {
    let limited = http_body_util::Limited::new(body, max);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(AcmeError::new(
            ProblemType::Malformed,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body larger than {max} bytes"),
        )),
        Err(_) => Err(AcmeError::malformed("The request body could not be read")),
    }
}

/// How a request must identify its signer (RFC 8555 §6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyMode {
    /// `jwk` only: newAccount (and keyChange's inner JWS).
    Jwk,
    /// `kid` only: every request of an existing account.
    Kid,
    /// Either: revokeCert.
    Either,
}

/// A verified request.
#[derive(Debug)]
pub(crate) struct Authenticated {
    /// The JWS, signature verified.
    pub jws: Jws,
    /// The signing key.
    pub jwk: Jwk,
    /// The account, when signed with `kid`.
    pub account: Option<Account>,
}

impl Authenticated {
    /// The account; only call for [`KeyMode::Kid`] requests.
    pub(crate) fn account(&self) -> Result<&Account, AcmeError> {
        self.account
            .as_ref()
            .ok_or_else(|| AcmeError::malformed("This request must be signed with a kid"))
    }

    /// The payload as JSON of type `T`. POST-as-GET has no payload and is refused here.
    pub(crate) fn payload<T: serde::de::DeserializeOwned>(&self) -> Result<T, AcmeError> {
        if self.jws.post_as_get {
            return Err(AcmeError::malformed(
                "This request needs a JSON payload; POST-as-GET is not allowed here",
            ));
        }
        serde_json::from_slice(&self.jws.payload).map_err(|e| {
            AcmeError::malformed(format!("Request payload did not parse as JSON: {e}"))
        })
    }
}

fn jws_error(e: JwsError) -> AcmeError {
    match e {
        JwsError::Malformed(detail) => AcmeError::malformed(detail),
        JwsError::UnsupportedAlgorithm(alg) => {
            let mut err = AcmeError::new(
                ProblemType::BadSignatureAlgorithm,
                StatusCode::BAD_REQUEST,
                format!("JWS signature algorithm {alg:?} is not supported"),
            );
            err.problem_mut().algorithms = Some(
                SignatureAlgorithm::ALL
                    .iter()
                    .map(|a| a.name().to_owned())
                    .collect(),
            );
            err
        }
        JwsError::BadSignature => AcmeError::malformed("JWS verification error"),
        _ => AcmeError::malformed("The JWS is not acceptable"),
    }
}

impl AppState {
    /// Runs the pipeline: parse, `url`, algorithm, key, signature, nonce, account status.
    pub(crate) fn authenticate(
        &self,
        post: &JosePost,
        mode: KeyMode,
    ) -> Result<Authenticated, AcmeError> {
        let jws = Jws::parse(&post.body).map_err(jws_error)?;
        match jws.header.url.as_deref() {
            None => {
                return Err(AcmeError::malformed(
                    "JWS header parameter 'url' is required",
                ));
            }
            Some(url) if url != post.url => {
                return Err(AcmeError::unauthorized(format!(
                    "The JWS header url {url:?} does not match the request URL {:?}",
                    post.url
                )));
            }
            Some(_) => {}
        }
        jws.algorithm().map_err(jws_error)?;
        let (jwk, account) = match (&jws.header.jwk, &jws.header.kid, mode) {
            (Some(_), Some(_), _) | (None, None, _) => {
                return Err(AcmeError::malformed(
                    "The JWS protected header must contain exactly one of \"jwk\" and \"kid\"",
                ));
            }
            (Some(_), None, KeyMode::Kid) => {
                return Err(AcmeError::malformed(
                    "This request must be signed with the account URL as \"kid\", not a \"jwk\"",
                ));
            }
            (None, Some(_), KeyMode::Jwk) => {
                return Err(AcmeError::malformed(
                    "This request must carry the account key as \"jwk\", not a \"kid\"",
                ));
            }
            (Some(jwk), None, _) => {
                let jwk = Jwk::from_json(jwk).map_err(|e| {
                    AcmeError::new(
                        ProblemType::BadPublicKey,
                        StatusCode::BAD_REQUEST,
                        e.to_string(),
                    )
                })?;
                (jwk, None)
            }
            (None, Some(kid), _) => {
                let account = self.account_for_kid(&post.ctx, kid)?;
                (account.jwk.clone(), Some(account))
            }
        };
        jws.verify(&jwk).map_err(jws_error)?;
        self.redeem_nonce(&post.ctx, jws.header.nonce.as_deref())?;
        if post.ctx.profile.strict.refuse_resource_field
            && let Ok(serde_json::Value::Object(payload)) =
                serde_json::from_slice::<serde_json::Value>(&jws.payload)
            && let Some(resource) = payload
                .get("resource")
                .and_then(|r| r.as_str())
                .filter(|r| !r.is_empty())
        {
            return Err(AcmeError::malformed(format!(
                "JWS body included JSON with a deprecated ACME v1 \"resource\" field ({resource:?})"
            )));
        }
        if let Some(account) = &account {
            self.check_account_usable(account)?;
        }
        Ok(Authenticated { jws, jwk, account })
    }

    fn account_for_kid(&self, ctx: &ProfileCtx, kid: &str) -> Result<Account, AcmeError> {
        let not_found = || {
            AcmeError::new(
                ProblemType::AccountDoesNotExist,
                StatusCode::BAD_REQUEST,
                format!("No account exists at the kid URL {kid:?}"),
            )
        };
        let prefix = format!("{}/account/", ctx.resources);
        let id = kid.strip_prefix(&prefix).ok_or_else(not_found)?;
        self.store.account(id).ok_or_else(not_found)
    }

    fn redeem_nonce(&self, ctx: &ProfileCtx, nonce: Option<&str>) -> Result<(), AcmeError> {
        let nonce = nonce.ok_or_else(|| AcmeError::bad_nonce("JWS has no anti-replay nonce"))?;
        match self.store.nonces.redeem(nonce) {
            Ok(()) => Ok(()),
            // §6: Sectigo refuses a nonce that is not base64url as malformed (acme.sh #6698).
            Err(NonceError::Garbled) if ctx.profile.nonce.garbled_is_malformed => Err(
                AcmeError::malformed("The Replay Nonce could not be base64url-decoded"),
            ),
            // §6: Sectigo's badNonce text (acme.sh #3433).
            Err(_) => Err(AcmeError::bad_nonce("The Replay Nonce is not recognized")),
        }
    }

    /// Refuses deactivated accounts and accounts whose EAB credential was revoked.
    pub(crate) fn check_account_usable(&self, account: &Account) -> Result<(), AcmeError> {
        if account.status != Status::Valid {
            return Err(AcmeError::unauthorized(format!(
                "Account is not valid, has status \"{}\"",
                account.status.as_str()
            )));
        }
        let live = self.store.account_status(&account.id);
        if live != Some(Status::Valid) {
            return Err(AcmeError::unauthorized("Account is not valid"));
        }
        if let Some(kid) = &account.eab_kid
            && self
                .store
                .orgs
                .load()
                .credential(kid)
                .is_some_and(|c| c.is_revoked())
        {
            return Err(AcmeError::unauthorized(
                "The External Account Binding credential of this account has been revoked",
            ));
        }
        Ok(())
    }
}
