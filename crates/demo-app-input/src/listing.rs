use serde::Deserialize;

use crate::Refused;

pub const MAX_PAGE: u32 = 100;
const DEFAULT_PAGE: u32 = 20;

/// The order list's query, as sent: every field a string, so that a wrong
/// value is refused naming its field (serde's own errors name none).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1-100 (default 20).
    #[param(value_type = Option<u32>, nullable = false, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// Continue after this order id, in the listing's order (the previous
    /// page's `next_after`).
    #[param(value_type = Option<i64>, nullable = false, minimum = 0)]
    after: Option<String>,
    /// `asc` (default): oldest first; `desc`: newest first.
    #[param(value_type = Option<String>, nullable = false, pattern = "^(asc|desc)$")]
    order: Option<String>,
}

/// One page of the listing, as asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    /// The last order id of the previous page.
    pub after: Option<i64>,
    pub newest_first: bool,
}

impl ListParams {
    /// The page asked for, or which field is wrong.
    pub fn parse(&self) -> Result<Page, Refused> {
        let bad = |field: &str, detail: &str| Refused(format!("{field}: {detail}"));
        let limit = match self.limit.as_deref() {
            None => DEFAULT_PAGE,
            Some(raw) => {
                raw.parse().ok().filter(|l| (1..=MAX_PAGE).contains(l)).ok_or_else(|| bad("limit", "must be 1-100"))?
            }
        };
        let after = match self.after.as_deref() {
            None | Some("") => None,
            Some(raw) => {
                Some(raw.parse::<i64>().ok().filter(|a| *a >= 0).ok_or_else(|| bad("after", "must be an order id"))?)
            }
        };
        let newest_first = match self.order.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => return Err(bad("order", "must be asc or desc")),
        };
        Ok(Page { limit, after, newest_first })
    }
}
