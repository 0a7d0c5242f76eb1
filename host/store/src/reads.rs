//! The API's reads. Every one takes the caller's tenant and filters on it in SQL: a count,
//! a page boundary or a lookup by id never involves another tenant's rows.

use std::collections::{BTreeMap, BTreeSet};

use crate::cursor;
use crate::queue::{JOB_COLUMNS, job_from_row};
use crate::sql::{Dialect, Row, Tx, Value};
use crate::{
    DEFAULT_PAGE, DeliveryInfo, DeliveryState, Finding, FindingFilter, HealthEvent, Image,
    ImageFilter, ImageHealth, ImageRef, JobState, MAX_PAGE, OwnershipChange, Package, Page, PageOf,
    RecommendationGroup, Result, ScanFilter, Severity, Stats, Summary, TenantId, TenantSummary,
};

/// Statement text and its parameters, built together so that `$n` always matches.
struct Sql {
    text: String,
    params: Vec<Value>,
}

impl Sql {
    fn new(text: &str, tenant: TenantId) -> Sql {
        Sql {
            text: text.to_string(),
            params: vec![tenant.0.into()],
        }
    }
    /// Adds a parameter; its placeholder.
    fn arg(&mut self, v: impl Into<Value>) -> String {
        self.params.push(v.into());
        format!("${}", self.params.len())
    }
    fn and(&mut self, cond: &str) {
        self.text.push_str(" AND ");
        self.text.push_str(cond);
    }
}

/// `instr` (SQLite) / `strpos` (PostgreSQL): where `needle` occurs in `haystack`, 1-based.
fn position(dialect: Dialect, haystack: &str, needle: &str) -> String {
    match dialect {
        Dialect::Sqlite => format!("instr({haystack}, {needle})"),
        Dialect::Postgres => format!("strpos({haystack}, {needle})"),
    }
}

/// How a JSON array of strings spells `s` (the needle that finds it in that text).
fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn json_list(text: Option<String>) -> Vec<String> {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// The rows of `page`: its limit, clamped to 1–[`MAX_PAGE`].
fn limit(page: &Page) -> i64 {
    i64::from(page.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE))
}

fn empty<T>() -> PageOf<T> {
    PageOf {
        items: Vec::new(),
        next_cursor: None,
    }
}

/// Which way a sort key runs.
#[derive(Clone, Copy)]
enum Dir {
    Asc,
    Desc,
}

/// A keyset-paginated listing: the one place that turns a [`Page`] into a seek
/// condition, an `ORDER BY … LIMIT` and a next cursor. A page starts strictly after the
/// cursor's keys in the listing's order, so rows inserted meanwhile neither repeat nor
/// shift a page (unlike an offset).
struct Keyset {
    /// The cursor's listing: a cursor of another listing is a bad cursor.
    list: &'static str,
    /// The sort keys, most significant first: an integer column and its direction. The
    /// last one must be unique (an id), so that the order is total.
    keys: &'static [(&'static str, Dir)],
}

impl Keyset {
    /// Reads one page of `q` (a `SELECT … WHERE tenant_id = $1 …` with its filters):
    /// seeks past `page.cursor`, orders, fetches one row more than the limit to know
    /// whether there is a next page, and encodes that page's cursor from `key` (the
    /// values of [`Keyset::keys`] of a row). Another tenant's cursor gives an empty page.
    async fn read<T>(
        &self,
        tx: &mut dyn Tx,
        mut q: Sql,
        tenant: TenantId,
        page: &Page,
        from_row: impl Fn(&Row) -> Result<T>,
        key: impl Fn(&T) -> Vec<i64>,
    ) -> Result<PageOf<T>> {
        if let Some(c) = &page.cursor {
            let Some(after) = cursor::decode(c, self.list, tenant, self.keys.len())? else {
                return Ok(empty());
            };
            let cond = self.after(&mut q, &after);
            q.and(&cond);
        }
        let lim = limit(page);
        let order: Vec<String> = self
            .keys
            .iter()
            .map(|(col, dir)| match dir {
                Dir::Asc => col.to_string(),
                Dir::Desc => format!("{col} DESC"),
            })
            .collect();
        let p = q.arg(lim + 1);
        q.text
            .push_str(&format!(" ORDER BY {} LIMIT {p}", order.join(", ")));
        let mut items = tx
            .query(&q.text, &q.params)
            .await?
            .iter()
            .map(from_row)
            .collect::<Result<Vec<_>>>()?;
        let more = items.len() as i64 > lim;
        items.truncate(lim as usize);
        let next_cursor = if more {
            items
                .last()
                .map(|last| cursor::encode(self.list, tenant, &key(last)))
        } else {
            None
        };
        Ok(PageOf { items, next_cursor })
    }

    /// "Comes after `after` in this order", lexicographically over the keys:
    /// `k0 ≻ a0 OR (k0 = a0 AND (k1 ≻ a1 OR …))`.
    fn after(&self, q: &mut Sql, after: &[i64]) -> String {
        let mut cond = String::new();
        for (i, ((col, dir), value)) in self.keys.iter().zip(after).enumerate().rev() {
            let p = q.arg(*value);
            let op = match dir {
                Dir::Asc => ">",
                Dir::Desc => "<",
            };
            cond = if i + 1 == self.keys.len() {
                format!("{col} {op} {p}")
            } else {
                format!("({col} {op} {p} OR ({col} = {p} AND {cond}))")
            };
        }
        cond
    }
}

// --- images ----------------------------------------------------------------------------

const IMAGE_COLUMNS: &str = "id, registry, repository, digest, tags, platform, os_id, \
    os_version, os_name, os_eol, health, critical, high, medium, low, negligible, unknown, \
    suppressed, packages, first_seen_at, scanned_at, updated_at, last_error";

fn image_from_row(r: &Row) -> Result<Image> {
    Ok(Image {
        id: r.int(0)?,
        registry: r.text(1)?,
        repository: r.text(2)?,
        digest: r.text(3)?,
        tags: json_list(r.opt_text(4)?),
        platform: r.opt_text(5)?,
        os_id: r.opt_text(6)?,
        os_version: r.opt_text(7)?,
        os_name: r.opt_text(8)?,
        os_eol: r.opt_int(9)?,
        health: r.parsed(10)?,
        counts: Summary {
            critical: r.count(11)?,
            high: r.count(12)?,
            medium: r.count(13)?,
            low: r.count(14)?,
            negligible: r.count(15)?,
            unknown: r.count(16)?,
            suppressed: r.count(17)?,
        },
        packages: r.int(18)?,
        first_seen_at: r.int(19)?,
        scanned_at: r.opt_int(20)?,
        updated_at: r.int(21)?,
        last_error: r.opt_text(22)?,
    })
}

/// The count columns of severities at or above `min`.
fn counts_at_least(min: Severity) -> String {
    let cols: Vec<String> = Severity::ALL
        .iter()
        .filter(|s| **s >= min)
        .map(|s| format!("{} > 0", s.as_str()))
        .collect();
    format!("({})", cols.join(" OR "))
}

pub(crate) async fn images(
    tx: &mut dyn Tx,
    tenant: TenantId,
    filter: ImageFilter,
    page: Page,
) -> Result<PageOf<Image>> {
    let mut q = Sql::new(
        &format!("SELECT {IMAGE_COLUMNS} FROM images WHERE tenant_id = $1"),
        tenant,
    );
    if let Some(v) = filter.registry {
        let p = q.arg(v);
        q.and(&format!("registry = {p}"));
    }
    if let Some(v) = filter.repository {
        let p = q.arg(v);
        q.and(&format!("repository = {p}"));
    }
    if let Some(v) = filter.repository_prefix.filter(|p| !p.is_empty()) {
        let len = q.arg(v.chars().count() as i64);
        let p = q.arg(v);
        q.and(&format!("substr(repository, 1, {len}) = {p}"));
    }
    if let Some(h) = filter.health {
        let p = q.arg(h.as_str());
        q.and(&format!("health = {p}"));
    }
    if let Some(s) = filter.min_severity {
        q.and(&counts_at_least(s));
    }
    if let Some(tag) = filter.tag {
        let p = q.arg(json_string(&tag));
        let cond = format!("{} > 0", position(tx.dialect(), "tags", &p));
        q.and(&cond);
    }
    const IMAGES: Keyset = Keyset {
        list: "images",
        keys: &[("id", Dir::Desc)],
    };
    IMAGES
        .read(tx, q, tenant, &page, image_from_row, |i| vec![i.id])
        .await
}

pub(crate) async fn image(tx: &mut dyn Tx, tenant: TenantId, id: i64) -> Result<Option<Image>> {
    tx.query_opt(
        &format!("SELECT {IMAGE_COLUMNS} FROM images WHERE id = $1 AND tenant_id = $2"),
        &[id.into(), tenant.0.into()],
    )
    .await?
    .as_ref()
    .map(image_from_row)
    .transpose()
}

pub(crate) async fn image_report(
    tx: &mut dyn Tx,
    tenant: TenantId,
    id: i64,
) -> Result<Option<String>> {
    match tx
        .query_opt(
            "SELECT report FROM images WHERE id = $1 AND tenant_id = $2",
            &[id.into(), tenant.0.into()],
        )
        .await?
    {
        Some(r) => r.opt_text(0),
        None => Ok(None),
    }
}

// --- findings and packages -------------------------------------------------------------

pub(crate) async fn findings(
    tx: &mut dyn Tx,
    tenant: TenantId,
    filter: FindingFilter,
    page: Page,
) -> Result<PageOf<Finding>> {
    let mut q = Sql::new(
        "SELECT f.id, f.image_id, i.registry, i.repository, i.digest, f.vuln_id, f.aliases, \
         f.package, f.installed_version, f.fixed_version, f.fix_state, f.severity, \
         f.cvss_score, f.cvss_vector, f.title, f.ecosystem, f.package_type, f.layer_digest, \
         f.first_seen_at, f.severity_rank \
         FROM findings f JOIN images i ON i.id = f.image_id WHERE f.tenant_id = $1",
        tenant,
    );
    if let Some(v) = filter.image_id {
        let p = q.arg(v);
        q.and(&format!("f.image_id = {p}"));
    }
    if let Some(s) = filter.min_severity {
        let p = q.arg(s.rank());
        q.and(&format!("f.severity_rank >= {p}"));
    }
    match filter.fixable {
        Some(true) => q.and("f.fixed_version IS NOT NULL"),
        Some(false) => q.and("f.fixed_version IS NULL"),
        None => {}
    }
    if let Some(v) = filter.package {
        let p = q.arg(v);
        q.and(&format!("f.package = {p}"));
    }
    if let Some(v) = filter.vuln_id {
        // The id or one of its aliases (CVE-… for an ALSA-… finding and the other way).
        let needle = json_string(&v);
        let p = q.arg(v);
        let n = q.arg(needle);
        let cond = format!(
            "(f.vuln_id = {p} OR {} > 0)",
            position(tx.dialect(), "f.aliases", &n)
        );
        q.and(&cond);
    }
    // Most severe first; the rank is a sort key, so the cursor carries it.
    const FINDINGS: Keyset = Keyset {
        list: "findings",
        keys: &[("f.severity_rank", Dir::Desc), ("f.id", Dir::Asc)],
    };
    let from_row = |r: &Row| -> Result<(Finding, i64)> {
        Ok((
            Finding {
                id: r.int(0)?,
                image_id: r.int(1)?,
                registry: r.text(2)?,
                repository: r.text(3)?,
                digest: r.text(4)?,
                vuln_id: r.text(5)?,
                aliases: json_list(r.opt_text(6)?),
                package: r.text(7)?,
                installed_version: r.text(8)?,
                fixed_version: r.opt_text(9)?,
                fix_state: r.text(10)?,
                severity: r.parsed(11)?,
                cvss_score: r.opt_real(12)?,
                cvss_vector: r.opt_text(13)?,
                title: r.text(14)?,
                ecosystem: r.text(15)?,
                package_type: r.text(16)?,
                layer_digest: r.opt_text(17)?,
                first_seen_at: r.int(18)?,
            },
            r.int(19)?,
        ))
    };
    let page = FINDINGS
        .read(tx, q, tenant, &page, from_row, |(f, rank)| {
            vec![*rank, f.id]
        })
        .await?;
    Ok(PageOf {
        items: page.items.into_iter().map(|(f, _)| f).collect(),
        next_cursor: page.next_cursor,
    })
}

pub(crate) async fn packages(
    tx: &mut dyn Tx,
    tenant: TenantId,
    image_id: i64,
    page: Page,
) -> Result<PageOf<Package>> {
    let mut q = Sql::new(
        "SELECT id, image_id, name, version, ecosystem, source_name, source_version, arch, \
         license, purl, layer_digest FROM packages WHERE tenant_id = $1",
        tenant,
    );
    let p = q.arg(image_id);
    q.and(&format!("image_id = {p}"));
    const PACKAGES: Keyset = Keyset {
        list: "packages",
        keys: &[("id", Dir::Asc)],
    };
    let from_row = |r: &Row| {
        Ok(Package {
            id: r.int(0)?,
            image_id: r.int(1)?,
            name: r.text(2)?,
            version: r.text(3)?,
            ecosystem: r.text(4)?,
            source_name: r.opt_text(5)?,
            source_version: r.opt_text(6)?,
            arch: r.opt_text(7)?,
            license: r.opt_text(8)?,
            purl: r.text(9)?,
            layer_digest: r.opt_text(10)?,
        })
    };
    PACKAGES
        .read(tx, q, tenant, &page, from_row, |p| vec![p.id])
        .await
}

// --- recommendations -------------------------------------------------------------------

/// At most this many images are listed per recommendation (`image_count` has them all).
const MAX_IMAGES_PER_GROUP: usize = 100;

pub(crate) async fn recommendations(
    tx: &mut dyn Tx,
    tenant: TenantId,
    page: Page,
) -> Result<PageOf<RecommendationGroup>> {
    // Groups have no stable single key to seek to: the cursor is an offset (in the one
    // snapshot of this read, and bound to the tenant like every cursor).
    let offset = match &page.cursor {
        Some(c) => match cursor::decode(c, "recommendations", tenant, 1)? {
            Some(keys) => keys[0].max(0),
            None => return Ok(empty()),
        },
        None => 0,
    };
    let lim = limit(&page);
    let groups = tx
        .query(
            "SELECT r.package, r.fixed_version, MAX(r.severity_rank) AS worst, \
             COUNT(DISTINCT r.image_id) AS n \
             FROM recommendations r JOIN images i ON i.id = r.image_id \
             WHERE r.tenant_id = $1 AND i.health = 'unhealthy' \
             GROUP BY r.package, r.fixed_version \
             ORDER BY worst DESC, n DESC, r.package, r.fixed_version LIMIT $2 OFFSET $3",
            &[tenant.0.into(), (lim + 1).into(), offset.into()],
        )
        .await?;
    let mut items = Vec::with_capacity(groups.len());
    for (i, g) in groups.iter().enumerate() {
        if i as i64 == lim {
            break;
        }
        let package = g.text(0)?;
        let fixed_version = g.text(1)?;
        let rank = g.int(2)?;
        let rows = tx
            .query(
                "SELECT r.image_id, i.registry, i.repository, i.digest, r.fixes \
                 FROM recommendations r JOIN images i ON i.id = r.image_id \
                 WHERE r.tenant_id = $1 AND i.health = 'unhealthy' \
                 AND r.package = $2 AND r.fixed_version = $3 ORDER BY r.image_id",
                &[tenant.0.into(), (&package).into(), (&fixed_version).into()],
            )
            .await?;
        let mut fixes = BTreeSet::new();
        let mut images = Vec::new();
        for r in &rows {
            fixes.extend(json_list(r.opt_text(4)?));
            if images.len() < MAX_IMAGES_PER_GROUP {
                images.push(ImageRef {
                    id: r.int(0)?,
                    registry: r.text(1)?,
                    repository: r.text(2)?,
                    digest: r.text(3)?,
                });
            }
        }
        items.push(RecommendationGroup {
            package,
            fixed_version,
            severity: Severity::from_rank(rank).unwrap_or(Severity::Unknown),
            fixes: fixes.into_iter().collect(),
            image_count: g.int(3)?,
            images,
        });
    }
    let next_cursor = (groups.len() as i64 > lim)
        .then(|| cursor::encode("recommendations", tenant, &[offset + lim]));
    Ok(PageOf { items, next_cursor })
}

// --- scans, events, deliveries ---------------------------------------------------------

pub(crate) async fn scans(
    tx: &mut dyn Tx,
    tenant: TenantId,
    filter: ScanFilter,
    page: Page,
) -> Result<PageOf<crate::Job>> {
    let mut q = Sql::new(
        &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE tenant_id = $1"),
        tenant,
    );
    if let Some(s) = filter.state {
        let p = q.arg(s.as_str());
        q.and(&format!("state = {p}"));
    }
    if let Some(v) = filter.image_id {
        let p = q.arg(v);
        q.and(&format!("image_id = {p}"));
    }
    if let Some(v) = filter.repository {
        let p = q.arg(v);
        q.and(&format!("repository = {p}"));
    }
    const SCANS: Keyset = Keyset {
        list: "scans",
        keys: &[("id", Dir::Desc)],
    };
    SCANS
        .read(tx, q, tenant, &page, job_from_row, |j| vec![j.id])
        .await
}

pub(crate) async fn health_events(
    tx: &mut dyn Tx,
    tenant: TenantId,
    image_id: Option<i64>,
    page: Page,
) -> Result<PageOf<HealthEvent>> {
    let mut q = Sql::new(
        "SELECT id, image_id, at, from_health, to_health, reason, new_findings \
         FROM health_events WHERE tenant_id = $1",
        tenant,
    );
    if let Some(v) = image_id {
        let p = q.arg(v);
        q.and(&format!("image_id = {p}"));
    }
    let from_row = |r: &Row| {
        Ok(HealthEvent {
            id: r.int(0)?,
            image_id: r.int(1)?,
            at: r.int(2)?,
            from_health: r.opt_parsed(3)?,
            to_health: r.parsed(4)?,
            reason: r.text(5)?,
            new_findings: r
                .opt_text(6)?
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default(),
        })
    };
    const HEALTH_EVENTS: Keyset = Keyset {
        list: "health_events",
        keys: &[("id", Dir::Desc)],
    };
    HEALTH_EVENTS
        .read(tx, q, tenant, &page, from_row, |e| vec![e.id])
        .await
}

pub(crate) async fn deliveries(
    tx: &mut dyn Tx,
    tenant: TenantId,
    page: Page,
) -> Result<PageOf<DeliveryInfo>> {
    let q = Sql::new(
        "SELECT id, url, event, state, attempts, next_at, last_status, last_error, \
         created_at, delivered_at FROM deliveries WHERE tenant_id = $1",
        tenant,
    );
    let from_row = |r: &Row| {
        Ok(DeliveryInfo {
            id: r.int(0)?,
            url: r.text(1)?,
            event: r.text(2)?,
            state: r.parsed(3)?,
            attempts: r.int(4)?,
            next_at: r.opt_int(5)?,
            last_status: r.opt_int(6)?,
            last_error: r.opt_text(7)?,
            created_at: r.int(8)?,
            delivered_at: r.opt_int(9)?,
        })
    };
    const DELIVERIES: Keyset = Keyset {
        list: "deliveries",
        keys: &[("id", Dir::Desc)],
    };
    DELIVERIES
        .read(tx, q, tenant, &page, from_row, |d| vec![d.id])
        .await
}

pub(crate) async fn ownership_changes(
    tx: &mut dyn Tx,
    tenant: TenantId,
    page: Page,
) -> Result<PageOf<OwnershipChange>> {
    let q = Sql::new(
        "SELECT id, at, token_id, action, registry, prefix FROM ownership_changes \
         WHERE tenant_id = $1",
        tenant,
    );
    let from_row = |r: &Row| {
        Ok(OwnershipChange {
            id: r.int(0)?,
            at: r.int(1)?,
            token_id: r.opt_int(2)?,
            action: r.text(3)?,
            registry: r.text(4)?,
            prefix: r.text(5)?,
        })
    };
    const CHANGES: Keyset = Keyset {
        list: "ownership_changes",
        keys: &[("id", Dir::Desc)],
    };
    CHANGES
        .read(tx, q, tenant, &page, from_row, |c| vec![c.id])
        .await
}

// --- counts ----------------------------------------------------------------------------

/// `SELECT key, COUNT(*) … GROUP BY key` into a map that has every `keys` entry.
async fn grouped(
    tx: &mut dyn Tx,
    sql: &str,
    params: &[Value],
    keys: impl Iterator<Item = &'static str>,
) -> Result<BTreeMap<String, i64>> {
    let mut map: BTreeMap<String, i64> = keys.map(|k| (k.to_string(), 0)).collect();
    for r in tx.query(sql, params).await? {
        map.insert(r.text(0)?, r.int(1)?);
    }
    Ok(map)
}

pub(crate) async fn tenant_summary(tx: &mut dyn Tx, tenant: TenantId) -> Result<TenantSummary> {
    let t = [Value::Int(tenant.0)];
    Ok(TenantSummary {
        images: grouped(
            tx,
            "SELECT health, COUNT(*) FROM images WHERE tenant_id = $1 GROUP BY health",
            &t,
            ImageHealth::ALL.iter().map(|h| h.as_str()),
        )
        .await?,
        jobs: grouped(
            tx,
            "SELECT state, COUNT(*) FROM jobs WHERE tenant_id = $1 GROUP BY state",
            &t,
            JobState::ALL.iter().map(|s| s.as_str()),
        )
        .await?,
        findings: grouped(
            tx,
            "SELECT severity, COUNT(*) FROM findings WHERE tenant_id = $1 GROUP BY severity",
            &t,
            Severity::ALL.iter().map(|s| s.as_str()),
        )
        .await?,
    })
}

pub(crate) async fn stats(tx: &mut dyn Tx, now: i64) -> Result<Stats> {
    Ok(Stats {
        jobs: grouped(
            tx,
            "SELECT state, COUNT(*) FROM jobs GROUP BY state",
            &[],
            JobState::ALL.iter().map(|s| s.as_str()),
        )
        .await?,
        jobs_ready: tx
            .query_one(
                "SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND run_at <= $1",
                &[now.into()],
            )
            .await?
            .int(0)?,
        images: grouped(
            tx,
            "SELECT health, COUNT(*) FROM images GROUP BY health",
            &[],
            ImageHealth::ALL.iter().map(|h| h.as_str()),
        )
        .await?,
        deliveries: grouped(
            tx,
            "SELECT state, COUNT(*) FROM deliveries GROUP BY state",
            &[],
            DeliveryState::ALL.iter().map(|s| s.as_str()),
        )
        .await?,
        tenants: tx
            .query_one("SELECT COUNT(*) FROM tenants", &[])
            .await?
            .int(0)?,
    })
}
