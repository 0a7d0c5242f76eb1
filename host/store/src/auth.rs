//! Tenants, their ownership of repositories, notification targets and API tokens.

use sha2::{Digest, Sha256};

use crate::sql::{Dialect, Row, Tx};
use crate::{
    Error, NewToken, Ownership, OwnershipActor, Principal, Result, Role, Tenant, TenantId,
    TenantSpec, TokenInfo,
};

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| Error::Db(format!("no randomness: {e}")))?;
    Ok(hex::encode(buf))
}

/// A bearer token: `bh_` and 256 random bits in hex (the prefix makes a leaked token easy
/// to recognise for secret scanners).
pub(crate) fn new_secret() -> Result<String> {
    Ok(format!("bh_{}", random_hex(32)?))
}

/// A job's lease token: 128 random bits.
pub(crate) fn new_lease_token() -> Result<String> {
    random_hex(16)
}

/// What the store keeps of a secret: its sha256, hex. A stolen database does not yield
/// usable tokens, and a lookup compares hashes, never the secrets.
pub(crate) fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Ownership prefixes are repository paths: `team-a/` and `/team-a` mean `team-a`.
fn normalise_prefix(prefix: &str) -> String {
    prefix.trim_matches('/').to_string()
}

/// Whether `prefix` owns `repository`: whole path segments only.
pub fn prefix_matches(prefix: &str, repository: &str) -> bool {
    prefix.is_empty()
        || repository == prefix
        || repository
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

async fn tenant_id_for(tx: &mut dyn Tx, name: &str, now: i64) -> Result<TenantId> {
    tx.execute(
        "INSERT INTO tenants (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        &[name.into(), now.into()],
    )
    .await?;
    let row = tx
        .query_one("SELECT id FROM tenants WHERE name = $1", &[name.into()])
        .await?;
    Ok(TenantId(row.int(0)?))
}

/// Whether two prefixes on one registry overlap: equal, or one holds the other (whole
/// segments; `""` holds everything). Two tenants never own overlapping prefixes: a
/// repository has at most one possible owner, so no entry can take another tenant's
/// repositories by being longer (or shorter) than theirs.
pub fn prefixes_overlap(a: &str, b: &str) -> bool {
    prefix_matches(a, b) || prefix_matches(b, a)
}

/// An arbitrary constant: the PostgreSQL advisory lock that serialises ownership changes,
/// so that two transactions cannot each check, find no overlap, and insert overlapping
/// prefixes (SQLite serialises every write already).
const OWNERSHIP_LOCK: i64 = 0x6275_6c6b_6f77_6e73; // "bulkowns" in ASCII

async fn lock_ownership(tx: &mut dyn Tx) -> Result<()> {
    if tx.dialect() == Dialect::Postgres {
        tx.batch(&format!("SELECT pg_advisory_xact_lock({OWNERSHIP_LOCK})"))
            .await?;
    }
    Ok(())
}

pub(crate) async fn sync_tenants(tx: &mut dyn Tx, specs: Vec<TenantSpec>, now: i64) -> Result<()> {
    // Refuse an ambiguous configuration rather than let one tenant win silently: the
    // configuration is read by its administrator, so the message names both tenants.
    let mut claimed: Vec<(&str, String, &str)> = Vec::new();
    for spec in &specs {
        if spec.name.trim().is_empty() {
            return Err(Error::Invalid("a tenant has an empty name".to_string()));
        }
        for (registry, prefix) in &spec.ownership {
            let prefix = normalise_prefix(prefix);
            if let Some((_, other_prefix, other)) = claimed.iter().find(|(r, p, t)| {
                *r == registry.as_str() && *t != spec.name.as_str() && prefixes_overlap(p, &prefix)
            }) {
                return Err(Error::Invalid(format!(
                    "registry {registry:?}: prefix {prefix:?} of tenant {:?} overlaps prefix \
                     {other_prefix:?} of tenant {other:?} (a repository can have one owner)",
                    spec.name
                )));
            }
            claimed.push((registry.as_str(), prefix, spec.name.as_str()));
        }
    }
    lock_ownership(tx).await?;
    tx.execute("DELETE FROM ownership WHERE origin = 'config'", &[])
        .await?;
    tx.execute("DELETE FROM notification_targets", &[]).await?;
    // What tenants added through the API stays theirs: a configuration that overlaps
    // another tenant's entry is a start-up error, not a silent transfer.
    let api_entries = tx
        .query(
            "SELECT o.id, o.registry, o.prefix, t.name FROM ownership o \
             JOIN tenants t ON t.id = o.tenant_id",
            &[],
        )
        .await?;
    for row in &api_entries {
        let (id, registry, prefix, owner) = (row.int(0)?, row.text(1)?, row.text(2)?, row.text(3)?);
        if let Some((_, p, t)) = claimed.iter().find(|(r, p, t)| {
            *r == registry.as_str() && *t != owner.as_str() && prefixes_overlap(p, &prefix)
        }) {
            return Err(Error::Invalid(format!(
                "registry {registry:?}: prefix {p:?} of tenant {t:?} overlaps prefix {prefix:?}, \
                 which tenant {owner:?} added through the API (ownership entry {id}); remove \
                 one of them (an admin of {owner:?}: DELETE /v1/ownership/{id})"
            )));
        }
    }
    for spec in &specs {
        let tenant = tenant_id_for(tx, &spec.name, now).await?;
        for (registry, prefix) in &spec.ownership {
            // The configuration takes over the tenant's own API entry for the same
            // (registry, prefix); another tenant's was refused above.
            tx.execute(
                "INSERT INTO ownership (tenant_id, registry, prefix, origin) \
                 VALUES ($1, $2, $3, 'config') \
                 ON CONFLICT (registry, prefix) \
                 DO UPDATE SET origin = 'config', created_at = NULL, created_by_token = NULL",
                &[
                    tenant.0.into(),
                    registry.into(),
                    normalise_prefix(prefix).into(),
                ],
            )
            .await?;
        }
        if let Some((url, secret)) = &spec.notify {
            tx.execute(
                "INSERT INTO notification_targets (tenant_id, url, secret) VALUES ($1, $2, $3)",
                &[tenant.0.into(), url.into(), secret.into()],
            )
            .await?;
        }
    }
    Ok(())
}

fn tenant(row: &Row) -> Result<Tenant> {
    Ok(Tenant {
        id: TenantId(row.int(0)?),
        name: row.text(1)?,
        created_at: row.int(2)?,
    })
}

pub(crate) async fn tenants(tx: &mut dyn Tx) -> Result<Vec<Tenant>> {
    tx.query(
        "SELECT id, name, created_at FROM tenants ORDER BY name",
        &[],
    )
    .await?
    .iter()
    .map(tenant)
    .collect()
}

pub(crate) async fn tenant_by_name(tx: &mut dyn Tx, name: String) -> Result<Option<Tenant>> {
    tx.query_opt(
        "SELECT id, name, created_at FROM tenants WHERE name = $1",
        &[name.into()],
    )
    .await?
    .as_ref()
    .map(tenant)
    .transpose()
}

pub(crate) async fn owner_of(
    tx: &mut dyn Tx,
    registry: String,
    repository: String,
) -> Result<Option<TenantId>> {
    let rows = tx
        .query(
            "SELECT tenant_id, prefix FROM ownership WHERE registry = $1",
            &[registry.into()],
        )
        .await?;
    let mut best: Option<(usize, TenantId)> = None;
    for row in rows {
        let prefix = row.text(1)?;
        if prefix_matches(&prefix, &repository) && best.is_none_or(|(len, _)| prefix.len() > len) {
            best = Some((prefix.len(), TenantId(row.int(0)?)));
        }
    }
    Ok(best.map(|(_, t)| t))
}

const OWNERSHIP_COLUMNS: &str = "id, registry, prefix, origin, created_at, created_by_token";

fn ownership(row: &Row) -> Result<Ownership> {
    Ok(Ownership {
        id: row.int(0)?,
        registry: row.text(1)?,
        prefix: row.text(2)?,
        origin: row.text(3)?,
        created_at: row.opt_int(4)?,
        created_by_token: row.opt_int(5)?,
    })
}

async fn record_change(
    tx: &mut dyn Tx,
    tenant: TenantId,
    by: &OwnershipActor,
    action: &str,
    registry: &str,
    prefix: &str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO ownership_changes (tenant_id, at, token_id, action, registry, prefix) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            tenant.0.into(),
            by.at.into(),
            by.token_id.into(),
            action.into(),
            registry.into(),
            prefix.into(),
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn add_ownership(
    tx: &mut dyn Tx,
    tenant: TenantId,
    registry: String,
    prefix: String,
    by: OwnershipActor,
    max_entries: u32,
) -> Result<Ownership> {
    if registry.is_empty() {
        return Err(Error::Invalid("empty registry name".to_string()));
    }
    let prefix = normalise_prefix(&prefix);
    lock_ownership(tx).await?;
    let rows = tx
        .query(
            "SELECT tenant_id, prefix FROM ownership WHERE registry = $1",
            &[(&registry).into()],
        )
        .await?;
    for row in &rows {
        let (owner, theirs) = (TenantId(row.int(0)?), row.text(1)?);
        if owner == tenant {
            if theirs == prefix {
                return Err(Error::Conflict(format!(
                    "registry {registry:?} prefix {prefix:?}: this tenant owns it already"
                )));
            }
        } else if prefixes_overlap(&theirs, &prefix) {
            // Neither the tenant nor its prefix: a claim must not tell who owns what.
            return Err(Error::Conflict(format!(
                "registry {registry:?} prefix {prefix:?} overlaps a prefix that is owned \
                 already (the same prefix, one inside it, or one it lies inside); ask the \
                 service's administrator"
            )));
        }
    }
    let count = tx
        .query_one(
            "SELECT COUNT(*) FROM ownership WHERE tenant_id = $1 AND origin = 'api'",
            &[tenant.0.into()],
        )
        .await?
        .int(0)?;
    if count >= i64::from(max_entries) {
        return Err(Error::Conflict(format!(
            "the tenant has {count} ownership entries added through the API, the most \
             allowed ({max_entries}); remove one first"
        )));
    }
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO ownership (tenant_id, registry, prefix, origin, created_at, \
                 created_by_token) VALUES ($1, $2, $3, 'api', $4, $5) \
                 RETURNING {OWNERSHIP_COLUMNS}"
            ),
            &[
                tenant.0.into(),
                (&registry).into(),
                (&prefix).into(),
                by.at.into(),
                by.token_id.into(),
            ],
        )
        .await?;
    record_change(tx, tenant, &by, "add", &registry, &prefix).await?;
    ownership(&row)
}

pub(crate) async fn remove_ownership(
    tx: &mut dyn Tx,
    tenant: TenantId,
    id: i64,
    by: OwnershipActor,
) -> Result<bool> {
    let Some(row) = tx
        .query_opt(
            "DELETE FROM ownership WHERE id = $1 AND tenant_id = $2 RETURNING registry, prefix",
            &[id.into(), tenant.0.into()],
        )
        .await?
    else {
        return Ok(false);
    };
    let (registry, prefix) = (row.text(0)?, row.text(1)?);
    record_change(tx, tenant, &by, "remove", &registry, &prefix).await?;
    Ok(true)
}

pub(crate) async fn list_ownership(tx: &mut dyn Tx, tenant: TenantId) -> Result<Vec<Ownership>> {
    tx.query(
        &format!(
            "SELECT {OWNERSHIP_COLUMNS} FROM ownership WHERE tenant_id = $1 \
             ORDER BY registry, prefix"
        ),
        &[tenant.0.into()],
    )
    .await?
    .iter()
    .map(ownership)
    .collect()
}

pub(crate) async fn create_token(
    tx: &mut dyn Tx,
    tenant_name: String,
    role: Role,
    name: String,
    secret: String,
    now: i64,
) -> Result<NewToken> {
    let tenant = tenant_by_name(tx, tenant_name.clone())
        .await?
        .ok_or_else(|| Error::NotFound(format!("tenant {tenant_name:?}")))?;
    let row = tx
        .query_one(
            "INSERT INTO tokens (tenant_id, name, role, hash, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                tenant.id.0.into(),
                name.into(),
                role.as_str().into(),
                hash_secret(&secret).into(),
                now.into(),
            ],
        )
        .await?;
    Ok(NewToken {
        id: row.int(0)?,
        secret,
    })
}

/// How stale `last_used_at` may get before a request refreshes it.
pub(crate) const LAST_USED_RESOLUTION_MS: i64 = 60_000;

/// The principal of a token hash and its `last_used_at`.
pub(crate) async fn lookup_token(
    tx: &mut dyn Tx,
    hash: String,
) -> Result<Option<(Principal, Option<i64>)>> {
    let Some(row) = tx
        .query_opt(
            "SELECT t.id, t.tenant_id, n.name, t.role, t.last_used_at \
             FROM tokens t JOIN tenants n ON n.id = t.tenant_id \
             WHERE t.hash = $1 AND t.revoked_at IS NULL",
            &[hash.into()],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some((
        Principal {
            token_id: row.int(0)?,
            tenant_id: TenantId(row.int(1)?),
            tenant_name: row.text(2)?,
            role: row.parsed(3)?,
        },
        row.opt_int(4)?,
    )))
}

pub(crate) async fn touch_token(tx: &mut dyn Tx, id: i64, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE tokens SET last_used_at = $1 WHERE id = $2",
        &[now.into(), id.into()],
    )
    .await?;
    Ok(())
}

pub(crate) async fn revoke_token(
    tx: &mut dyn Tx,
    tenant: Option<TenantId>,
    id: i64,
    now: i64,
) -> Result<bool> {
    let n = match tenant {
        Some(t) => {
            tx.execute(
                "UPDATE tokens SET revoked_at = $1 \
                 WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL",
                &[now.into(), id.into(), t.0.into()],
            )
            .await?
        }
        None => {
            tx.execute(
                "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                &[now.into(), id.into()],
            )
            .await?
        }
    };
    Ok(n > 0)
}

pub(crate) async fn list_tokens(tx: &mut dyn Tx, tenant: TenantId) -> Result<Vec<TokenInfo>> {
    let rows = tx
        .query(
            "SELECT id, name, role, created_at, last_used_at, revoked_at FROM tokens \
             WHERE tenant_id = $1 ORDER BY id",
            &[tenant.0.into()],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(TokenInfo {
                id: r.int(0)?,
                name: r.text(1)?,
                role: r.parsed(2)?,
                created_at: r.int(3)?,
                last_used_at: r.opt_int(4)?,
                revoked_at: r.opt_int(5)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(prefix_matches("", "anything/at/all"));
        assert!(prefix_matches("team-a", "team-a"));
        assert!(prefix_matches("team-a", "team-a/web"));
        assert!(!prefix_matches("team-a", "team-ab/web"));
        assert!(!prefix_matches("team-a/web", "team-a"));
    }

    #[test]
    fn prefixes_overlap_when_equal_or_nested() {
        assert!(prefixes_overlap("team-b", "team-b"));
        assert!(prefixes_overlap("team-b/app", "team-b"), "inside");
        assert!(prefixes_overlap("team-b", "team-b/app"), "contains");
        assert!(
            prefixes_overlap("", "team-b"),
            "the whole registry holds everything"
        );
        assert!(prefixes_overlap("team-b", ""));
        assert!(
            !prefixes_overlap("team-b", "team-bb"),
            "whole segments only"
        );
        assert!(!prefixes_overlap("team-a/app", "team-b/app"));
    }

    #[test]
    fn secrets_are_prefixed_and_hashed() {
        let s = new_secret().expect("random");
        assert!(s.starts_with("bh_") && s.len() == 67, "{s}");
        // `printf abc | sha256sum`.
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
