//! Layering of one YAML/JSON tree over another.
//!
//! Maps merge key by key; `null` removes a key (as in a JSON merge patch); a list whose items all
//! carry a `name` merges item by item on that name, so an overlay can change one gateway without
//! restating the others; any other list or scalar is replaced.

use serde_json::{Map, Value};

/// Lays `overlay` over `base`.
pub fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => merge_maps(base, overlay),
        (Value::Array(base), Value::Array(overlay))
            if is_named_list(base) && is_named_list(&overlay) =>
        {
            merge_named_lists(base, overlay)
        }
        (base, overlay) => *base = overlay,
    }
}

fn merge_maps(base: &mut Map<String, Value>, overlay: Map<String, Value>) {
    for (key, value) in overlay {
        if value.is_null() {
            base.remove(&key);
        } else if let Some(existing) = base.get_mut(&key) {
            merge(existing, value);
        } else {
            base.insert(key, value);
        }
    }
}

fn merge_named_lists(base: &mut Vec<Value>, overlay: Vec<Value>) {
    for item in overlay {
        let name = item_name(&item).map(str::to_owned);
        match base.iter_mut().find(|b| item_name(b) == name.as_deref()) {
            Some(existing) => merge(existing, item),
            None => base.push(item),
        }
    }
}

fn is_named_list(items: &[Value]) -> bool {
    items.iter().all(|item| item_name(item).is_some())
}

fn item_name(item: &Value) -> Option<&str> {
    item.get("name").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_merge_deeply_and_scalars_replace() {
        let mut base = json!({"a": {"b": 1, "c": 2}, "d": "x"});
        merge(&mut base, json!({"a": {"c": 3, "e": 4}, "d": "y"}));
        assert_eq!(base, json!({"a": {"b": 1, "c": 3, "e": 4}, "d": "y"}));
    }

    #[test]
    fn null_removes_a_key() {
        let mut base = json!({"a": {"b": 1, "c": 2}});
        merge(&mut base, json!({"a": {"b": null}}));
        assert_eq!(base, json!({"a": {"c": 2}}));
    }

    #[test]
    fn named_lists_merge_by_name_and_append_new_names() {
        let mut base = json!([{"name": "in", "enabled": true, "k": 1}, {"name": "other"}]);
        merge(
            &mut base,
            json!([{"name": "in", "enabled": false}, {"name": "new"}]),
        );
        assert_eq!(
            base,
            json!([{"name": "in", "enabled": false, "k": 1}, {"name": "other"}, {"name": "new"}])
        );
    }

    #[test]
    fn plain_lists_are_replaced() {
        let mut base = json!({"l": [1, 2, 3]});
        merge(&mut base, json!({"l": [4]}));
        assert_eq!(base, json!({"l": [4]}));
    }
}
