//! Tenants: with tenants enabled, the `X-Scope-OrgID` of a request selects whose spans it
//! writes or reads. A tenant's data lives under `<data>/tenants/<org id>/spans/…` in the same
//! layout; requests without the header use the default tenant at `<data>/spans/…` (SPEC.md).
//!
//! Org ids are 1–128 characters from `A–Z a–z 0–9 - _ .` (not `.` or `..`), so a tenant's
//! directory name is the id itself — nothing to escape, nothing to confuse across stores.

use crate::location::DataLocation;

/// Directory that holds the tenants' data.
pub const TENANTS_DIR: &str = "tenants";

/// A validated org id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// Longest org id.
    pub const MAX_LEN: usize = 128;

    /// Validates `id` (the value of an `X-Scope-OrgID` header).
    pub fn parse(id: &str) -> Result<Self, String> {
        let valid_chars = id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if id.is_empty() || id.len() > Self::MAX_LEN || !valid_chars || id == "." || id == ".." {
            return Err(format!(
                "invalid X-Scope-OrgID '{}': use 1 to {} characters from A-Z a-z 0-9 - _ . (not '.' or '..')",
                id.chars().take(Self::MAX_LEN + 8).collect::<String>(),
                Self::MAX_LEN
            ));
        }
        Ok(Self(id.to_owned()))
    }

    /// The id (also its directory name).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl DataLocation {
    /// The data location of `tenant`: `<self>/tenants/<id>`.
    pub fn for_tenant(&self, tenant: &TenantId) -> DataLocation {
        self.child(&[TENANTS_DIR, tenant.as_str()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_ids_are_checked() {
        for ok in ["a", "team-1", "ACME_prod.eu", &"x".repeat(128)] {
            assert_eq!(TenantId::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["", ".", "..", "a/b", "a b", "ä", "50%", &"x".repeat(129)] {
            let e = TenantId::parse(bad).unwrap_err();
            assert!(e.contains("invalid X-Scope-OrgID"), "{e}");
        }
    }

    #[test]
    fn a_tenant_lives_under_tenants() {
        let dir = tempfile::tempdir().unwrap();
        let location = DataLocation::open(dir.path().to_str().unwrap()).unwrap();
        let tenant = location.for_tenant(&TenantId::parse("acme").unwrap());
        assert!(tenant.spans_url().ends_with("/tenants/acme/spans/"), "{}", tenant.spans_url());
        assert_eq!(tenant.spans_path().as_ref(), format!("{}/tenants/acme/spans", location.prefix().as_ref()));
    }
}
