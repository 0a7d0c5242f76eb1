//! Tenants, their ownership of repositories, notification targets and API tokens.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::sql::{Row, Tx};
use crate::{
    Error, NewToken, Ownership, Principal, Result, Role, Tenant, TenantId, TenantSpec, TokenInfo,
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
pub(crate) fn prefix_matches(prefix: &str, repository: &str) -> bool {
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

pub(crate) async fn sync_tenants(tx: &mut dyn Tx, specs: Vec<TenantSpec>, now: i64) -> Result<()> {
    // Refuse an ambiguous configuration rather than let the last tenant win silently.
    let mut claimed: HashMap<(String, String), &str> = HashMap::new();
    for spec in &specs {
        if spec.name.trim().is_empty() {
            return Err(Error::Invalid("a tenant has an empty name".to_string()));
        }
        for (registry, prefix) in &spec.ownership {
            let key = (registry.clone(), normalise_prefix(prefix));
            if let Some(other) = claimed.insert(key, &spec.name)
                && other != spec.name
            {
                return Err(Error::Invalid(format!(
                    "registry {registry:?} prefix {prefix:?} is owned by both tenant {other:?} and tenant {:?}",
                    spec.name
                )));
            }
        }
    }
    tx.execute("DELETE FROM ownership WHERE origin = 'config'", &[])
        .await?;
    tx.execute("DELETE FROM notification_targets", &[]).await?;
    for spec in &specs {
        let tenant = tenant_id_for(tx, &spec.name, now).await?;
        for (registry, prefix) in &spec.ownership {
            // The configuration wins over an API entry for the same (registry, prefix).
            tx.execute(
                "INSERT INTO ownership (tenant_id, registry, prefix, origin) \
                 VALUES ($1, $2, $3, 'config') \
                 ON CONFLICT (registry, prefix) \
                 DO UPDATE SET tenant_id = excluded.tenant_id, origin = 'config'",
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

fn ownership(row: &Row) -> Result<Ownership> {
    Ok(Ownership {
        id: row.int(0)?,
        registry: row.text(1)?,
        prefix: row.text(2)?,
        origin: row.text(3)?,
    })
}

pub(crate) async fn add_ownership(
    tx: &mut dyn Tx,
    tenant: TenantId,
    registry: String,
    prefix: String,
) -> Result<Ownership> {
    if registry.is_empty() {
        return Err(Error::Invalid("empty registry name".to_string()));
    }
    let prefix = normalise_prefix(&prefix);
    let row = tx
        .query_one(
            "INSERT INTO ownership (tenant_id, registry, prefix, origin) \
             VALUES ($1, $2, $3, 'api') RETURNING id, registry, prefix, origin",
            &[tenant.0.into(), (&registry).into(), (&prefix).into()],
        )
        .await
        .map_err(|e| match e {
            // Do not say which tenant has it.
            Error::Conflict(_) => Error::Conflict(format!(
                "registry {registry:?} prefix {prefix:?} is already owned"
            )),
            e => e,
        })?;
    ownership(&row)
}

pub(crate) async fn remove_ownership(tx: &mut dyn Tx, tenant: TenantId, id: i64) -> Result<bool> {
    Ok(tx
        .execute(
            "DELETE FROM ownership WHERE id = $1 AND tenant_id = $2",
            &[id.into(), tenant.0.into()],
        )
        .await?
        > 0)
}

pub(crate) async fn list_ownership(tx: &mut dyn Tx, tenant: TenantId) -> Result<Vec<Ownership>> {
    tx.query(
        "SELECT id, registry, prefix, origin FROM ownership WHERE tenant_id = $1 \
         ORDER BY registry, prefix",
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
