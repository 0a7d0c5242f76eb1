//! NVD CVE API 2.0: pages (`{"vulnerabilities": [{"cve": {…}}, …]}`) or single CVE objects
//! (`{"id": "CVE-…", …}`, the one-file-per-CVE mirrors), as files or directories of them.
//!
//! NVD describes CVEs by CPE, not by distribution package, so it yields no advisories: only
//! [`Enrichment`], the CVSS vectors and base scores of each CVE (v2, v3.0, v3.1, v4.0, from
//! NVD itself and from the CNAs), for distribution advisories that carry none.

use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{MAX_DOCUMENT, opt_time, read_limited, shorten, walk};
use crate::error::{Error, Result};
use crate::model::{Enrichment, Severity, SeverityKind};

/// Reads one page or CVE file, or every `.json` file under a directory.
pub fn read_path(path: &Path) -> Result<Box<dyn Iterator<Item = Result<Enrichment>>>> {
    let meta =
        std::fs::metadata(path).map_err(|e| Error::with_source(path, "cannot open NVD feed", e))?;
    let files = if meta.is_dir() {
        walk(path, &[".json"])?
    } else {
        vec![path.to_path_buf()]
    };
    Ok(Box::new(files.into_iter().flat_map(|f| {
        match read_file(&f) {
            Ok(records) => records,
            Err(e) => vec![Err(e)],
        }
    })))
}

/// Reads one NVD file: a page, or a single CVE object.
pub fn read_file(path: &Path) -> Result<Vec<Result<Enrichment>>> {
    let bytes = read_limited(path, MAX_DOCUMENT)?;
    parse(&bytes, path)
}

#[derive(Deserialize)]
struct RawPage<'a> {
    #[serde(borrow)]
    vulnerabilities: Option<Vec<&'a RawValue>>,
    id: Option<String>,
}

#[derive(Deserialize)]
struct RawItem {
    cve: RawCve,
}

#[derive(Deserialize)]
struct RawCve {
    id: String,
    #[serde(rename = "lastModified")]
    last_modified: Option<String>,
    #[serde(default)]
    metrics: RawMetrics,
}

#[derive(Deserialize, Default)]
struct RawMetrics {
    #[serde(rename = "cvssMetricV40", default)]
    v40: Vec<RawMetric>,
    #[serde(rename = "cvssMetricV31", default)]
    v31: Vec<RawMetric>,
    #[serde(rename = "cvssMetricV30", default)]
    v30: Vec<RawMetric>,
    #[serde(rename = "cvssMetricV2", default)]
    v2: Vec<RawMetric>,
}

#[derive(Deserialize)]
struct RawMetric {
    source: String,
    #[serde(rename = "cvssData")]
    data: RawCvssData,
}

#[derive(Deserialize)]
struct RawCvssData {
    #[serde(rename = "vectorString")]
    vector: String,
    #[serde(rename = "baseScore")]
    score: Option<f64>,
}

/// Parses an NVD page or CVE object; each CVE that does not parse is one `Err`.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Vec<Result<Enrichment>>> {
    let page: RawPage<'_> = serde_json::from_slice(bytes)
        .map_err(|e| Error::with_source(path, "invalid NVD JSON", e))?;
    match (page.vulnerabilities, page.id) {
        (Some(items), _) => Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, raw)| {
                let item: RawItem = serde_json::from_str(raw.get()).map_err(|e| {
                    Error::with_source(path, "invalid NVD entry", e)
                        .at(format!("vulnerabilities[{i}]"))
                })?;
                let id = item.cve.id.clone();
                convert(item.cve).map_err(|m| {
                    Error::new(path, m).at(format!("vulnerabilities[{i}] {}", shorten(&id)))
                })
            })
            .collect()),
        (None, Some(_)) => {
            let cve: RawCve = serde_json::from_slice(bytes)
                .map_err(|e| Error::with_source(path, "invalid NVD CVE object", e))?;
            let id = cve.id.clone();
            Ok(vec![convert(cve).map_err(|m| {
                Error::new(path, m).at(shorten(&id).to_owned())
            })])
        }
        (None, None) => Err(Error::new(
            path,
            "neither an NVD page (\"vulnerabilities\") nor a CVE object (\"id\")",
        )),
    }
}

fn convert(cve: RawCve) -> Result<Enrichment, String> {
    if !super::is_cve(&cve.id) {
        return Err(format!("not a CVE id: {:?}", shorten(&cve.id)));
    }
    let m = cve.metrics;
    let mut severity = Vec::new();
    for (kind, metrics) in [
        (SeverityKind::CvssV4, m.v40),
        (SeverityKind::CvssV3, m.v31),
        (SeverityKind::CvssV3, m.v30),
        (SeverityKind::CvssV2, m.v2),
    ] {
        for metric in metrics {
            if metric.data.vector.is_empty() {
                return Err("empty CVSS vector".into());
            }
            if let Some(s) = metric.data.score
                && !(0.0..=10.0).contains(&s)
            {
                return Err(format!("CVSS base score {s} out of range"));
            }
            severity.push(Severity {
                source: metric.source,
                kind,
                value: metric.data.vector,
                score: metric.data.score,
            });
        }
    }
    Ok(Enrichment {
        modified: opt_time("lastModified", cve.last_modified.as_deref())?,
        cve: cve.id,
        severity,
    })
}
