//! Resource representations: state records to RFC 8555 JSON, URLs built from the profile.

use acme_proto::{Directory, DirectoryMeta};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::ProfileCtx;
use crate::profile::Profile;
use crate::state::{Account, Authz, Challenge, Order};

/// RFC 3339 text of a timestamp.
pub(crate) fn timestamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// The directory of `profile` served at `base`. No newAuthz, as at Sectigo (§1).
pub(crate) fn directory(profile: &Profile, base: &str) -> Directory {
    let meta = &profile.meta;
    Directory {
        new_nonce: format!("{base}/newNonce"),
        new_account: format!("{base}/newAccount"),
        new_order: format!("{base}/newOrder"),
        new_authz: None,
        revoke_cert: format!("{base}/revokeCert"),
        key_change: format!("{base}/keyChange"),
        renewal_info: profile.renewal_info.then(|| format!("{base}/renewalInfo")),
        meta: Some(DirectoryMeta {
            terms_of_service: meta.terms_of_service.clone(),
            website: meta.website.clone(),
            caa_identities: match meta.hide_caa_identities {
                true => Vec::new(),
                false => meta.caa_identities.clone(),
            },
            external_account_required: Some(meta.external_account_required),
            profiles: profile
                .order
                .cert_profiles
                .iter()
                .map(|(name, p)| (name.clone(), p.description.clone()))
                .collect(),
            extra: meta.extra.clone(),
        }),
    }
}

pub(crate) fn account(ctx: &ProfileCtx, a: &Account) -> acme_proto::Account {
    acme_proto::Account {
        status: a.status,
        contact: (!a.contact.is_empty()).then(|| a.contact.clone()),
        terms_of_service_agreed: a.terms_agreed.then_some(true),
        external_account_binding: match ctx.profile.account.echo_eab {
            true => a.eab_binding.clone(),
            false => None,
        },
        orders: ctx
            .profile
            .account
            .orders_list
            .then(|| format!("{}/orders", ctx.url("account", &a.id))),
    }
}

pub(crate) fn order(ctx: &ProfileCtx, o: &Order, status: acme_proto::Status) -> acme_proto::Order {
    acme_proto::Order {
        status,
        expires: Some(timestamp(o.expires)),
        identifiers: o.identifiers.clone(),
        not_before: None,
        not_after: None,
        error: o.error.clone(),
        authorizations: o.authzs.iter().map(|id| ctx.url("authz", id)).collect(),
        finalize: format!("{}/finalize", ctx.url("order", &o.id)),
        certificate: match (status, &o.cert) {
            _ if ctx.profile.order.omit_certificate_url => None,
            (acme_proto::Status::Valid, Some(id)) => Some(ctx.url("cert", id)),
            _ => None,
        },
        profile: (!o.profile.is_empty()).then(|| o.profile.clone()),
        replaces: o.replaces.clone(),
    }
}

/// A challenge of the account `account` as JSON: `error` may be the `{}` Sectigo sends, which
/// no problem type models. dns-persist-01 names the account URL and the issuers its TXT
/// record may name (draft-ietf-acme-dns-persist §3).
pub(crate) fn challenge(ctx: &ProfileCtx, c: &Challenge, account: &str) -> serde_json::Value {
    let persist = c.kind == acme_proto::ChallengeType::DnsPersist01;
    let mut value = serde_json::to_value(acme_proto::Challenge {
        kind: c.kind.clone(),
        url: ctx.url("chall", &c.id),
        status: c.status,
        validated: c.validated.map(timestamp),
        error: None,
        token: c.token.clone(),
        accounturi: persist.then(|| ctx.url("account", account)),
        issuer_domain_names: persist.then(|| ctx.profile.meta.caa_identities.clone()),
    })
    .unwrap_or_default();
    if let (Some(error), Some(obj)) = (&c.error, value.as_object_mut()) {
        obj.insert("error".into(), error.clone());
    }
    value
}

pub(crate) fn authz(a: &Authz, challenges: Vec<serde_json::Value>) -> serde_json::Value {
    let mut value = serde_json::to_value(acme_proto::Authorization {
        identifier: a.identifier.clone(),
        status: a.status,
        expires: Some(timestamp(a.expires)),
        challenges: Vec::new(),
        wildcard: Some(a.wildcard),
    })
    .unwrap_or_default();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("challenges".into(), challenges.into());
    }
    value
}
