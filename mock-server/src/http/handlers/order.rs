//! Orders: newOrder with Sectigo's delegation rules, the order resource, finalize, and the
//! account's order list.

use std::collections::BTreeSet;
use std::time::Duration;

use acme_proto::{ChallengeType, Finalize, Identifier, NewOrder, ProblemType, Status, b64};
use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;

use super::super::jose::KeyMode;
use super::super::{AcmeError, AppState, ProfileCtx, repr};
use super::identifiers::checked_identifiers;
use super::{
    JosePost, Shared, gate, json_response, now_utc, owned, require_post_as_get, with_link,
    with_location, with_retry_after, with_retry_after_date,
};
use crate::ca::csr;
use crate::faults::{Endpoint, FaultKind};
use crate::state::{Account, Authz, Challenge, IssuedCert, Order, new_id};

/// POST newOrder (RFC 8555 §7.4): identifiers checked against the account's delegation (§3).
pub(crate) async fn new_order(State(state): Shared, post: JosePost) -> Result<Response, AcmeError> {
    let auth = state.authenticate(&post, KeyMode::Kid)?;
    let account = auth.account()?;
    let ctx = &post.ctx;
    state.rate_limit(ctx, &account.id)?;
    gate(&state, &post, &auth, Endpoint::NewOrder).await?;
    let req: NewOrder = auth.payload()?;
    let orgs = state.store.orgs.load();
    let credential = account
        .eab_kid
        .as_deref()
        .and_then(|kid| orgs.credential(kid));
    let delegation_required = ctx.profile.order.delegation == crate::profile::Delegation::Required;
    let identifiers =
        checked_identifiers(&req, credential.map(|c| &**c), &orgs, &ctx.profile.order)?;
    let cert_profile = ctx
        .profile
        .order
        .cert_profile_for(req.profile.as_deref())
        .ok_or_else(|| {
            AcmeError::new(
                ProblemType::InvalidProfile,
                StatusCode::BAD_REQUEST,
                format!(
                    "Order includes unrecognized profile name {:?}",
                    req.profile.as_deref().unwrap_or_default()
                ),
            )
        })?
        .to_owned();
    if let Some(replaces) = &req.replaces {
        check_replaces(&state, account, &identifiers, replaces)?;
    }

    let now = now_utc();
    let order_id = new_id();
    let mut authz_ids = Vec::with_capacity(identifiers.len());
    let mut authzs = Vec::with_capacity(identifiers.len());
    let mut new_challenges = Vec::new();
    let order_profile = &ctx.profile.order;
    let mut all_valid = true;
    for id in &identifiers {
        let name = &id.value;
        let is_ip = id.kind == acme_proto::IdentifierType::Ip;
        let authz_id = new_id();
        let (wildcard, base) = match name.strip_prefix("*.") {
            Some(base) => (true, base),
            None => (false, name.as_str()),
        };
        let identifier = Identifier {
            kind: id.kind.clone(),
            value: base.to_owned(),
        };
        if reuse_roll(order_profile.authz_reuse_percent)
            && let Some(reused) =
                state
                    .store
                    .reusable_authz(&account.id, &identifier, wildcard, now)
        {
            authz_ids.push(reused.id);
            continue;
        }
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
            new_challenges.push(Challenge {
                id: chall_id.clone(),
                authz: authz_id.clone(),
                kind: order_profile.prevalidated_challenge_type.clone(),
                status: Status::Valid,
                token: None,
                validated: Some(now),
                error: None,
            });
            challenges.push(chall_id);
        } else {
            all_valid = false;
            let token = new_token();
            // Persistent DCV is dns-01.
            // IP identifiers have no DNS to prove (RFC 8738 §7): http-01 and tls-alpn-01.
            let kinds: Vec<ChallengeType> = if is_ip {
                order_profile
                    .challenge_types
                    .iter()
                    .filter(|k| matches!(k, ChallengeType::Http01 | ChallengeType::TlsAlpn01))
                    .cloned()
                    .collect()
            } else if order_profile.persistent_dcv {
                vec![ChallengeType::Dns01]
            } else if wildcard {
                // Wildcards are proved in DNS only (RFC 8555 §7.1.3): dns-01, and
                // dns-account-01 and dns-persist-01 where the profile offers them.
                let mut dns = vec![ChallengeType::Dns01];
                for kind in [ChallengeType::DnsAccount01, ChallengeType::DnsPersist01] {
                    if order_profile.challenge_types.contains(&kind) {
                        dns.push(kind);
                    }
                }
                dns
            } else {
                order_profile.challenge_types.clone()
            };
            for kind in kinds {
                let chall_id = new_id();
                new_challenges.push(Challenge {
                    id: chall_id.clone(),
                    authz: authz_id.clone(),
                    // dns-persist-01 has no token (draft-ietf-acme-dns-persist §3).
                    token: (kind != ChallengeType::DnsPersist01).then(|| token.clone()),
                    kind,
                    status: Status::Pending,
                    validated: None,
                    error: None,
                });
                challenges.push(chall_id);
            }
        }
        authzs.push(Authz {
            id: authz_id.clone(),
            account: account.id.clone(),
            identifier,
            wildcard,
            status: if prevalidated {
                Status::Valid
            } else {
                Status::Pending
            },
            expires: now + time::Duration::days(30),
            challenges,
        });
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
        identifiers,
        authzs: authz_ids,
        expires: now + time::Duration::days(7),
        ready_at: None,
        retry_after: None,
        cert: None,
        error: None,
        profile: cert_profile,
        replaces: req.replaces.clone(),
    };
    // Fresh authorizations are valid or pending, so the order's status is its own.
    let body = json_response(StatusCode::CREATED, &repr::order(ctx, &order, order.status));
    // The order, its authorizations and their challenges in one transaction.
    state.store.create_order(order, authzs, new_challenges);
    Ok(with_location(body, &ctx.url("order", &order_id)))
}

/// RFC 9773 §5: the certificate `replaces` names must exist, belong to this account, share an
/// identifier with the new order and not be replaced already (`alreadyReplaced`).
fn check_replaces(
    state: &AppState,
    account: &Account,
    identifiers: &[Identifier],
    replaces: &str,
) -> Result<(), AcmeError> {
    let cert = state.store.cert_by_ari(replaces).ok_or_else(|| {
        AcmeError::malformed(format!(
            "No certificate has the ARI identifier {replaces:?} named in \"replaces\""
        ))
    })?;
    if cert.account != account.id {
        return Err(AcmeError::unauthorized(
            "The certificate named in \"replaces\" was not issued to this account",
        ));
    }
    if !identifiers.iter().any(|i| cert.names.contains(&i.value)) {
        return Err(AcmeError::malformed(
            "The new order shares no identifier with the certificate it replaces",
        ));
    }
    if let Some(by) = &cert.replaced_by {
        return Err(AcmeError::new(
            ProblemType::AlreadyReplaced,
            StatusCode::CONFLICT,
            format!("The certificate {replaces:?} was already replaced by order {by}"),
        ));
    }
    tracing::info!(replaces, "ARI: the new order is a replacement");
    Ok(())
}

fn owned_order(state: &AppState, id: &str, account: &Account) -> Result<Order, AcmeError> {
    owned(state.store.order(id), account, "Order", |o| &o.account)
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
        if ctx.profile.order.retry_after_http_date {
            with_retry_after_date(body, seconds)
        } else {
            with_retry_after(body, seconds)
        }
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
            ctx.profile.order.validity_days_for(&order.profile),
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
    let leaf_der = issued.leaf_der;
    let (ari_id, not_before, not_after) = super::cert::leaf_facts(&leaf_der);
    let cert = IssuedCert {
        id: cert_id,
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
        replaced_by: None,
    };
    let ready = |live: &Order| state.order_status(live) == Status::Ready;
    let Some(updated) = state
        .store
        .finalize_order(&id, ready, ready_at, retry_after, cert)
    else {
        return Err(AcmeError::new(
            ProblemType::OrderNotReady,
            StatusCode::FORBIDDEN,
            "Order is not ready to be finalized: it was finalized concurrently",
        ));
    };
    tracing::info!(order = %id, names = ?names, "order finalized");
    Ok(order_response(&state, ctx, &updated, StatusCode::OK))
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
    let all = state.store.order_ids_of(&id);
    let (page, next) = list_page(&all, &post.url, post.ctx.profile.account.orders_per_page)?;
    let orders: Vec<String> = page.iter().map(|o| post.ctx.url("order", o)).collect();
    let body = json_response(StatusCode::OK, &serde_json::json!({ "orders": orders }));
    Ok(match next {
        Some(cursor) => with_link(
            body,
            &format!("{}/orders?cursor={cursor}", post.ctx.url("account", &id)),
            "next",
        ),
        None => body,
    })
}

/// The page of `all` that `url`'s `cursor` query names (0 without one), `per_page` long, and
/// the next page's cursor if there is one. No `per_page`: everything on one page.
fn list_page<'a>(
    all: &'a [String],
    url: &str,
    per_page: Option<usize>,
) -> Result<(&'a [String], Option<usize>), AcmeError> {
    let cursor = match url.split_once('?') {
        None => 0,
        Some((_, query)) => query
            .split('&')
            .find_map(|kv| kv.strip_prefix("cursor="))
            .map(|c| {
                c.parse::<usize>().map_err(|_| {
                    AcmeError::malformed(format!("The order list cursor {c:?} is not a number"))
                })
            })
            .transpose()?
            .unwrap_or(0),
    };
    let Some(n) = per_page.filter(|n| *n > 0) else {
        return Ok((all, None));
    };
    let start = cursor.saturating_mul(n).min(all.len());
    let end = start.saturating_add(n).min(all.len());
    Ok((&all[start..end], (end < all.len()).then_some(cursor + 1)))
}

/// Whether this identifier reuses an authorization, `percent` times in a hundred.
fn reuse_roll(percent: u8) -> bool {
    use rand::Rng as _;
    percent > 0 && rand::rng().random_range(0..100u8) < percent
}

/// A challenge token: 32 random bytes, base64url (RFC 8555 §8.1 asks for 128 bits at least).
fn new_token() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    b64::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_list_pages() {
        let all: Vec<String> = (0..5).map(|i| format!("o{i}")).collect();
        let u = "https://x/v2/p/account/a/orders";
        assert_eq!(list_page(&all, u, None).unwrap(), (&all[..], None));
        assert_eq!(list_page(&all, u, Some(2)).unwrap(), (&all[0..2], Some(1)));
        let p2 = format!("{u}?cursor=1");
        assert_eq!(
            list_page(&all, &p2, Some(2)).unwrap(),
            (&all[2..4], Some(2))
        );
        let p3 = format!("{u}?cursor=2");
        assert_eq!(list_page(&all, &p3, Some(2)).unwrap(), (&all[4..5], None));
        let far = format!("{u}?cursor=99");
        assert_eq!(list_page(&all, &far, Some(2)).unwrap().0.len(), 0);
        assert!(list_page(&all, &format!("{u}?cursor=x"), Some(2)).is_err());
    }

    #[test]
    fn reuse_roll_bounds() {
        assert!(!reuse_roll(0));
        assert!(reuse_roll(100));
    }
}
