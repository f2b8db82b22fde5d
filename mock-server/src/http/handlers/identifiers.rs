//! The checks of a newOrder's identifiers: one pure function over the request, the account's
//! credential and the organisation model, so that every refusal text is unit-tested here.

use std::collections::BTreeSet;
use std::net::IpAddr;

use acme_proto::{Identifier, IdentifierType, NewOrder, ProblemType};
use http::StatusCode;

use super::super::AcmeError;
use crate::profile::{Delegation, OrderProfile};
use crate::state::org::{EabCredential, Orgs};

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

/// The checks of a newOrder's identifiers, in Sectigo's order and with its texts (§3):
/// identifiers present, no notBefore/notAfter, DNS names (and IP addresses where the profile
/// takes them, RFC 8738) only, valid and not duplicated; none refused by policy (one
/// subproblem per refused identifier); where delegation is required, every name delegated to
/// the account's credential and all of them of one organisation. The identifiers, DNS names
/// lower case and addresses in canonical form, in request order.
pub(super) fn checked_identifiers(
    req: &NewOrder,
    credential: Option<&EabCredential>,
    orgs: &Orgs,
    policy: &OrderProfile,
) -> Result<Vec<Identifier>, AcmeError> {
    let delegation_required = policy.delegation == Delegation::Required;
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
    let mut ips = Vec::new();
    for id in &req.identifiers {
        match &id.kind {
            IdentifierType::Dns => {}
            IdentifierType::Ip if policy.ip_identifiers => {
                let ip: IpAddr = id.value.parse().map_err(|_| {
                    AcmeError::malformed(format!(
                        "Order included malformed IP type identifier value: {:?}",
                        id.value
                    ))
                })?;
                ips.push(ip.to_string());
                continue;
            }
            // §3 [Z] (lego #2222, acme.sh #4022).
            IdentifierType::Ip => {
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
                    format!("Identifier type {:?} is not supported", other.as_str()),
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
    let unique: BTreeSet<&String> = names.iter().chain(&ips).collect();
    if unique.len() != names.len() + ips.len() {
        // §3 [Z] (acme.sh #3268).
        return Err(AcmeError::rejected_identifier(
            "One or more identifiers are duplicated",
        ));
    }
    let blocked: Vec<&String> = names
        .iter()
        .filter(|n| policy.is_blocked(n.strip_prefix("*.").unwrap_or(n)))
        .collect();
    if !blocked.is_empty() {
        // Pebble's domainBlocklist: one subproblem per refused identifier.
        let list: Vec<&str> = blocked.iter().map(|s| s.as_str()).collect();
        let mut err = AcmeError::rejected_identifier(format!(
            "Order included identifiers for which issuance is forbidden by policy: {}",
            list.join(", ")
        ));
        err.problem_mut().subproblems = blocked
            .iter()
            .map(|n| {
                let mut p = acme_proto::Problem::new(
                    ProblemType::RejectedIdentifier,
                    400,
                    format!("Issuance for {n:?} is forbidden by policy"),
                );
                p.identifier = Some(Identifier::dns(n.as_str()));
                p
            })
            .collect();
        return Err(err);
    }
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

    let mut out: Vec<Identifier> = Vec::with_capacity(req.identifiers.len());
    let (mut dns, mut ip) = (names.into_iter(), ips.into_iter());
    for id in &req.identifiers {
        let next = match id.kind {
            IdentifierType::Ip => ip.next().map(|v| Identifier {
                kind: IdentifierType::Ip,
                value: v,
            }),
            _ => dns.next().map(Identifier::dns),
        };
        out.extend(next);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(names: &[&str]) -> NewOrder {
        serde_json::from_value(serde_json::json!({
            "identifiers": names.iter().map(|n| serde_json::json!({"type": "dns", "value": n})).collect::<Vec<_>>()
        }))
        .expect("a newOrder payload")
    }

    fn policy(delegation: bool) -> OrderProfile {
        OrderProfile {
            delegation: if delegation {
                Delegation::Required
            } else {
                Delegation::None
            },
            ..OrderProfile::default()
        }
    }

    fn check(names: &[&str], delegation: bool) -> Result<Vec<String>, String> {
        let orgs = Orgs::demo();
        let credential = orgs.credentials.first().map(|c| &**c);
        checked_identifiers(&order(names), credential, &orgs, &policy(delegation))
            .map(|ids| ids.into_iter().map(|i| i.value).collect())
            .map_err(|e| e.problem().detail.clone().unwrap_or_default())
    }

    #[test]
    fn delegated_names_pass_lower_cased_in_order() {
        assert_eq!(
            check(&["WWW.Physics.example.edu", "*.physics.example.edu"], true),
            Ok(vec![
                "www.physics.example.edu".into(),
                "*.physics.example.edu".into()
            ])
        );
    }

    #[test]
    fn undelegated_names_are_listed() {
        let err = check(&["physics.example.edu", "chemistry.example.edu"], true).unwrap_err();
        assert!(
            err.starts_with("A requested identifier has not been delegated"),
            "{err}"
        );
        assert!(err.ends_with("chemistry.example.edu"), "{err}");
        // Without delegation (plain RFC 8555 profiles) any valid name passes.
        assert!(check(&["chemistry.example.edu"], false).is_ok());
    }

    #[test]
    fn bad_requests_get_sectigo_texts() {
        assert_eq!(
            check(&[], true).unwrap_err(),
            "The order must contain at least one identifier"
        );
        assert_eq!(
            check(&["physics.example.edu", "PHYSICS.example.edu"], true).unwrap_err(),
            "One or more identifiers are duplicated"
        );
        assert!(
            check(&["-bad-.example.edu"], false)
                .unwrap_err()
                .contains("not a valid DNS name")
        );
        assert!(
            check(&["localhost"], false)
                .unwrap_err()
                .contains("not a valid DNS name")
        );
        let ip = serde_json::from_value(serde_json::json!({
            "identifiers": [{"type": "ip", "value": "192.0.2.1"}]
        }))
        .expect("payload");
        let orgs = Orgs::demo();
        let err = checked_identifiers(&ip, None, &orgs, &policy(false)).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(err.problem().kind, ProblemType::UnsupportedIdentifier);
    }

    /// Where the profile takes IP identifiers (RFC 8738): canonical text, in request order
    /// among the DNS names; a malformed address is `malformed`.
    #[test]
    fn ip_identifiers_where_the_profile_takes_them() {
        let orgs = Orgs::demo();
        let mut p = policy(false);
        p.ip_identifiers = true;
        let req: NewOrder = serde_json::from_value(serde_json::json!({"identifiers": [
            {"type": "dns", "value": "A.example.com"},
            {"type": "ip", "value": "0:0:0:0:0:0:0:1"},
            {"type": "ip", "value": "127.0.0.1"}
        ]}))
        .expect("payload");
        let ids = checked_identifiers(&req, None, &orgs, &p).unwrap();
        let got: Vec<(&str, &str)> = ids
            .iter()
            .map(|i| (i.kind.as_str(), i.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [("dns", "a.example.com"), ("ip", "::1"), ("ip", "127.0.0.1")]
        );
        let bad: NewOrder = serde_json::from_value(serde_json::json!({"identifiers": [
            {"type": "ip", "value": "300.1.1.1"}
        ]}))
        .expect("payload");
        let err = checked_identifiers(&bad, None, &orgs, &p).unwrap_err();
        assert_eq!(err.problem().kind, ProblemType::Malformed);
    }

    /// Every refused identifier gets its own subproblem naming it.
    #[test]
    fn blocked_names_get_one_subproblem_each() {
        let orgs = Orgs::demo();
        let mut p = policy(false);
        p.blocked_domains = vec!["blocked-domain.example".into()];
        let req = order(&[
            "ok.example.com",
            "blocked-domain.example",
            "*.x.blocked-domain.example",
        ]);
        let err = checked_identifiers(&req, None, &orgs, &p).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let problem = err.problem();
        assert_eq!(problem.kind, ProblemType::RejectedIdentifier);
        let named: Vec<String> = problem
            .subproblems
            .iter()
            .map(|s| s.identifier.clone().unwrap().value)
            .collect();
        assert_eq!(
            named,
            ["blocked-domain.example", "*.x.blocked-domain.example"]
        );
        assert!(
            problem
                .subproblems
                .iter()
                .all(|s| s.kind == ProblemType::RejectedIdentifier)
        );
        assert!(checked_identifiers(&order(&["ok.example.com"]), None, &orgs, &p).is_ok());
    }

    #[test]
    fn names_of_two_organisations_are_refused_together() {
        let mut orgs = Orgs::demo();
        // A credential that (wrongly) covers names of two organisations.
        let both = orgs
            .add_credential(
                0,
                "both".into(),
                vec![1],
                &["physics.example.edu".into()],
                false,
                vec![],
            )
            .expect("credential");
        let mut domains = both.domains.clone();
        domains.insert("institute.example.org".into());
        let cred = EabCredential {
            kid: "both".into(),
            hmac_key: acme_proto::Secret::new(vec![1]),
            org: 0,
            department_id: 0,
            department: "Physics".into(),
            profiles: vec![],
            faults: arc_swap::ArcSwapOption::empty(),
            domains,
            reusable: false,
            bindings: std::sync::atomic::AtomicU64::new(0),
            revoked: std::sync::atomic::AtomicBool::new(false),
        };
        let err = checked_identifiers(
            &order(&["physics.example.edu", "institute.example.org"]),
            Some(&cred),
            &orgs,
            &policy(true),
        )
        .unwrap_err();
        let detail = err.problem().detail.clone().unwrap_or_default();
        assert!(
            detail.contains("same preauthorized Subject organization"),
            "{detail}"
        );
    }
}
