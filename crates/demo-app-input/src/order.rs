use serde::{Deserialize, Serialize};

use crate::Refused;

const MAX_QUANTITY: i64 = 10_000;
const MAX_UNIT_PRICE_CENTS: i64 = 100_000_000;

/// What a client asks to order, once its fields are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub sku: String,
    pub quantity: i64,
    pub unit_price_cents: i64,
}

// `remote = "Self"`: the derives become inherent functions, which the trait
// impls below call, so that an order is an object and nothing else (a
// derived struct also accepts the array `["sku", 1, 100]`).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct OrderRequest {
    /// Stock-keeping unit: 1-64 characters of `A-Z a-z 0-9 - _ .`
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", min_length = 1, max_length = 64)]
    pub sku: String,
    /// 1 to 10000.
    #[schema(minimum = 1, maximum = 10000)]
    #[serde(deserialize_with = "json_integer")]
    pub quantity: i64,
    /// 0 to 100000000 (one million in the currency).
    #[schema(minimum = 0, maximum = 100000000)]
    #[serde(deserialize_with = "json_integer")]
    pub unit_price_cents: i64,
}

/// A JSON Schema integer: `3` and also `3.0` (a number with a zero fraction
/// is an integer to JSON Schema, and to JavaScript clients); `3.5` is not.
fn json_integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(n) = number.as_i64() {
        return Ok(n);
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        _ => Err(serde::de::Error::custom(format!("expected an integer, found {number}"))),
    }
}

impl<'de> Deserialize<'de> for OrderRequest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectOnly;
        impl<'de> serde::de::Visitor<'de> for ObjectOnly {
            type Value = OrderRequest;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an order object with sku, quantity and unit_price_cents")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<OrderRequest, A::Error> {
                OrderRequest::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(ObjectOnly)
    }
}

impl Serialize for OrderRequest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        OrderRequest::serialize(self, serializer)
    }
}

impl OrderRequest {
    /// The first invalid field, named, or the order to store.
    pub fn validate(self) -> Result<NewOrder, Refused> {
        let sku_ok = (1..=64).contains(&self.sku.len())
            && self.sku.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !sku_ok {
            return Err(Refused("sku: 1-64 characters of A-Z a-z 0-9 - _ .".into()));
        }
        if !(1..=MAX_QUANTITY).contains(&self.quantity) {
            return Err(Refused(format!("quantity: must be 1-{MAX_QUANTITY}")));
        }
        if !(0..=MAX_UNIT_PRICE_CENTS).contains(&self.unit_price_cents) {
            return Err(Refused(format!("unit_price_cents: must be 0-{MAX_UNIT_PRICE_CENTS}")));
        }
        Ok(NewOrder { sku: self.sku, quantity: self.quantity, unit_price_cents: self.unit_price_cents })
    }
}
