//! Identifiers handed to clients: a prefix and a ULID (`req_01JF…`, `img_01JF…`), sortable
//! by creation time and never derived from anything a client controls.

use ulid::Ulid;

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", Ulid::new())
}

/// True when `id` is exactly `prefix_` followed by a well-formed ULID; used before an id
/// touches a path or a query, so nothing else (`..`, `/`, NUL) ever can.
pub fn is_valid(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|ulid| ulid.len() == 26 && Ulid::from_string(ulid).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_hostile_ids_are_refused() {
        let id = new_id("img");
        assert!(is_valid("img", &id));
        assert!(!is_valid("req", &id));
        assert!(!is_valid("img", "img_../../etc/passwd"));
        assert!(!is_valid("img", "img_01JF"));
    }
}
