//! Opaque pagination cursors: the listing, the tenant and the keyset position, hex
//! encoded. A cursor names its tenant so that another tenant's cursor yields an empty
//! page instead of a position in someone else's listing.

use crate::{Error, Result, TenantId};

pub(crate) fn encode(kind: &str, tenant: TenantId, keys: &[i64]) -> String {
    let mut text = format!("{kind}:{}", tenant.0);
    for k in keys {
        text.push_str(&format!(":{k}"));
    }
    hex::encode(text)
}

/// The keys of `cursor`: `Ok(None)` for another tenant's cursor, [`Error::BadCursor`] for
/// anything that is not a cursor of listing `kind` with `n` keys.
pub(crate) fn decode(
    cursor: &str,
    kind: &str,
    tenant: TenantId,
    n: usize,
) -> Result<Option<Vec<i64>>> {
    if cursor.len() > 512 {
        return Err(Error::BadCursor);
    }
    let bytes = hex::decode(cursor).map_err(|_| Error::BadCursor)?;
    let text = String::from_utf8(bytes).map_err(|_| Error::BadCursor)?;
    let mut parts = text.split(':');
    if parts.next() != Some(kind) {
        return Err(Error::BadCursor);
    }
    let owner: i64 = parts
        .next()
        .and_then(|t| t.parse().ok())
        .ok_or(Error::BadCursor)?;
    let keys: Vec<i64> = parts
        .map(|k| k.parse().map_err(|_| Error::BadCursor))
        .collect::<Result<_>>()?;
    if keys.len() != n {
        return Err(Error::BadCursor);
    }
    Ok((owner == tenant.0).then_some(keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_tenant_binding() {
        let c = encode("findings", TenantId(3), &[5, 42]);
        assert_eq!(
            decode(&c, "findings", TenantId(3), 2).expect("valid"),
            Some(vec![5, 42])
        );
        assert_eq!(decode(&c, "findings", TenantId(4), 2).expect("valid"), None);
        assert!(matches!(
            decode(&c, "images", TenantId(3), 2),
            Err(Error::BadCursor)
        ));
        assert!(matches!(
            decode("zz", "images", TenantId(3), 1),
            Err(Error::BadCursor)
        ));
        assert!(matches!(
            decode(&hex::encode("images:3:x"), "images", TenantId(3), 1),
            Err(Error::BadCursor)
        ));
    }
}
