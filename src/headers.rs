//! A response's headers, kept in Rust until the response is made: they cross into JS once,
//! as `name:value` lines, instead of one crossing per header set or read.

/// Header name/value pairs with the `Headers` semantics the gateway relies on: names compare
/// case-insensitively, `set` replaces, `append` adds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderList(Vec<(String, String)>);

impl HeaderList {
    pub fn new() -> HeaderList {
        HeaderList(Vec::new())
    }

    pub fn from_pairs(pairs: Vec<(String, String)>) -> HeaderList {
        HeaderList(pairs)
    }

    /// Replaces every value of `name` with `value`.
    pub fn set(&mut self, name: &str, value: &str) {
        let mut found = false;
        self.0.retain_mut(|(n, v)| {
            if !n.eq_ignore_ascii_case(name) {
                return true;
            }
            if found {
                return false;
            }
            found = true;
            *v = value.to_string();
            true
        });
        if !found {
            self.append(name, value);
        }
    }

    pub fn append(&mut self, name: &str, value: &str) {
        self.0.push((name.to_string(), value.to_string()));
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// As `name:value` lines for glue.js. A value with a line break would start another
    /// header: it is left out, as the runtime would refuse it.
    pub fn to_lines(&self) -> String {
        let mut lines = String::new();
        for (name, value) in &self.0 {
            push_line(&mut lines, name, value);
        }
        lines
    }

    /// As the runtime lists a `Headers` object: names lower-case and sorted, the values of
    /// a repeated name joined with ", " (what the request log stores).
    pub fn listed(&self) -> Vec<(String, String)> {
        let mut listed: Vec<(String, String)> = Vec::with_capacity(self.0.len());
        let mut sorted: Vec<(String, usize, &str)> = self
            .0
            .iter()
            .filter(|(_, v)| !breaks_line(v))
            .enumerate()
            .map(|(i, (n, v))| (n.to_ascii_lowercase(), i, v.as_str()))
            .collect();
        // The position keeps same-name values in their order (unstable sorts are smaller code).
        sorted.sort_unstable();
        for (name, _, value) in sorted {
            match listed.last_mut() {
                Some((last, joined)) if *last == name => {
                    joined.push_str(", ");
                    joined.push_str(value);
                }
                _ => listed.push((name, value.to_string())),
            }
        }
        listed
    }
}

/// Adds `name:value` to `lines` for glue.js, unless the value holds a line break.
pub fn push_line(lines: &mut String, name: &str, value: &str) {
    if !breaks_line(value) {
        lines.push_str(name);
        lines.push(':');
        lines.push_str(value);
        lines.push('\n');
    }
}

/// Whether a value holds a line break (a byte test: a `char` pattern walks the UTF-8).
fn breaks_line(value: &str) -> bool {
    value.bytes().any(|b| b == b'\n' || b == b'\r')
}

/// `name:value` lines (as glue.js's `headerLines` gives a `Headers` object) as pairs.
pub fn parse_lines(lines: &str) -> Vec<(String, String)> {
    lines
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(pairs: &[(&str, &str)]) -> HeaderList {
        HeaderList::from_pairs(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn set_replaces_every_value_of_a_name_whatever_its_case() {
        let mut headers = list(&[
            ("content-type", "text/plain"),
            ("X-One", "1"),
            ("Content-Type", "text/html"),
        ]);
        headers.set("Content-Type", "application/json");
        assert_eq!(
            headers,
            list(&[("content-type", "application/json"), ("X-One", "1")])
        );
        headers.set("X-Two", "2");
        assert_eq!(headers.get("x-two"), Some("2"));
        assert_eq!(headers.get("CONTENT-TYPE"), Some("application/json"));
        assert_eq!(headers.get("missing"), None);
    }

    #[test]
    fn append_keeps_earlier_values() {
        let mut headers = HeaderList::new();
        headers.append("Vary", "Origin");
        headers.append("vary", "Accept");
        assert_eq!(headers.iter().count(), 2);
        assert_eq!(headers.get("Vary"), Some("Origin"));
    }

    #[test]
    fn lines_leave_out_a_value_that_would_start_another_header() {
        let headers = list(&[("A", "1"), ("B", "2\r\nEvil: yes"), ("C", "x:y")]);
        assert_eq!(headers.to_lines(), "A:1\nC:x:y\n");
        assert_eq!(
            parse_lines(&headers.to_lines()),
            vec![
                ("A".to_string(), "1".to_string()),
                ("C".to_string(), "x:y".to_string())
            ]
        );
    }

    #[test]
    fn listed_as_the_runtime_lists_them() {
        let headers = list(&[
            ("X-B", "2"),
            ("Content-Type", "application/json"),
            ("x-b", "3"),
            ("X-Bad", "a\nb"),
        ]);
        assert_eq!(
            headers.listed(),
            vec![
                ("content-type".to_string(), "application/json".to_string()),
                ("x-b".to_string(), "2, 3".to_string()),
            ]
        );
    }
}
