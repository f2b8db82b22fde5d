//! Authorizations and challenges: fetch, deactivation, and the challenge response that
//! starts real validation in the background.

use std::time::Duration;

use acme_proto::{ProblemType, Status};
use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;
use serde_json::Value;

use super::super::jose::KeyMode;
use super::super::{AcmeError, AppState, ProfileCtx, repr};
use super::{JosePost, Shared, gate, json_response, now_utc, owned, with_link, with_retry_after};
use crate::faults::{Endpoint, FaultKind, FaultRule};
use crate::state::{Account, Authz, Challenge};

pub(super) fn owned_authz(
    state: &AppState,
    id: &str,
    account: &Account,
) -> Result<Authz, AcmeError> {
    owned(state.store.authz(id), account, "Authorization", |a| {
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
                .challenge(id)
                .map(|c| repr::challenge(ctx, &c, &authz.account))
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
        if let Some(live) = state
            .store
            .update_authz(&id, |a| a.status = Status::Deactivated)
        {
            authz = live;
        }
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
    let mut challenge = state.store.challenge(&id).ok_or_else(not_found)?;
    let account = auth.account()?;
    let authz = owned_authz(&state, &challenge.authz, account)?;
    if !auth.jws.post_as_get {
        if post
            .ctx
            .profile
            .strict
            .challenge_payload_exactly_empty_object
            && auth.jws.payload != b"{}"
        {
            return Err(AcmeError::malformed(
                "A challenge response's payload must be exactly {}",
            ));
        }
        let _: Value = auth.payload()?;
        let claimed = if authz.status == Status::Pending {
            state.store.start_challenge(&id)
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
    let body = json_response(
        StatusCode::OK,
        &repr::challenge(ctx, &challenge, &account.id),
    );
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
        let account_url = ctx.url("account", &authz.account);
        // Its own task: whatever happens inside, the challenge is settled below.
        let run = tokio::spawn(async move {
            if kind == acme_proto::ChallengeType::DnsPersist01 {
                // No token: the standing record names the CA and the account.
                let now = now_utc().unix_timestamp();
                validator
                    .dns_persist01(&name, wildcard, &account_url, &identities, now)
                    .await?;
            } else {
                let key_auth = acme_proto::KeyAuthorization::new(&token, &thumbprint);
                validator
                    .validate(&kind, &name, &token, &key_auth, &account_url)
                    .await?;
            }
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
    let (valid, error) = match outcome {
        Ok(()) => (true, None),
        Err(None) => (false, Some(serde_json::json!({}))),
        Err(Some(p)) => (false, serde_json::to_value(&p).ok()),
    };
    tracing::info!(challenge = %challenge.id, kind = %challenge.kind, %name, valid, "challenge validated");
    state
        .store
        .settle_challenge(&challenge.id, &authz.id, valid, error, now_utc());
}
