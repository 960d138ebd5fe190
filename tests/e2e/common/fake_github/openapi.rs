//! Routes: each operation id of GitHub's published OpenAPI description (github-ops.json) with its
//! handler, its method and path pattern, and the request and response schemas it is checked against.

use super::*;

pub(super) type Handler = fn(&Shared, &mut State, &Call) -> Reply;

pub(super) const ROUTES: &[(&str, Handler)] = &[
    ("repos/create-in-org", create_in_org),
    ("repos/create-for-authenticated-user", create_for_user),
    ("repos/get", get_repo),
    ("repos/create-deploy-key", create_deploy_key),
    ("repos/list-deploy-keys", list_deploy_keys),
    ("repos/delete-deploy-key", delete_deploy_key),
    ("git/create-ref", create_ref),
    ("git/get-ref", get_ref),
    ("git/update-ref", update_ref),
    ("git/delete-ref", delete_ref),
    ("pulls/create", create_pull),
    ("pulls/list", list_pulls),
    ("pulls/get", get_pull),
    ("pulls/merge", merge_pull),
    ("repos/create-commit-status", create_status),
    ("repos/get-combined-status-for-ref", combined_status),
];

pub(super) const DOCS: &str = "https://docs.github.com/rest";

/// One operation of github-ops.json.
pub(super) struct Op {
    pub(super) id: String,
    pub(super) method: String,
    pub(super) pattern: PathPattern,
    pub(super) request_schema: Option<Value>,
    /// status → (schema, example)
    pub(super) responses: BTreeMap<u16, (Option<Value>, Option<Value>)>,
}

pub(super) struct Route {
    pub(super) op: Op,
    pub(super) handler: Handler,
}

pub(super) fn load_routes(ops_json: &Path) -> Vec<Route> {
    let text = std::fs::read_to_string(ops_json)
        .unwrap_or_else(|e| panic!("fake GitHub: read {}: {e}", ops_json.display()));
    let doc: Value = serde_json::from_str(&text).expect("fake GitHub: github-ops.json is not JSON");
    let ops = doc["operations"]
        .as_array()
        .expect("github-ops.json: no operations");
    ROUTES
        .iter()
        .map(|(id, handler)| {
            let o = ops
                .iter()
                .find(|o| o["operationId"] == *id)
                .unwrap_or_else(|| panic!("github-ops.json lacks operation {id}"));
            let regex = o["regex"].as_str().expect("operation without regex");
            let responses = o["responses"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(status, r)| {
                            let opt = |v: &Value| (!v.is_null()).then(|| v.clone());
                            Some((
                                status.parse().ok()?,
                                (opt(&r["schema"]), opt(&r["example"])),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Route {
                op: Op {
                    id: id.to_string(),
                    method: o["method"].as_str().unwrap_or_default().to_uppercase(),
                    pattern: PathPattern::parse(regex)
                        .unwrap_or_else(|e| panic!("{id}: path regex {regex:?}: {e}")),
                    request_schema: (!o["request_schema"].is_null())
                        .then(|| o["request_schema"].clone()),
                    responses,
                },
                handler: *handler,
            }
        })
        .collect()
}

/// The ops' path regexes use only literals, `(?P<name>[^/]+)` and `(?P<name>.+)` between `^` and
/// `$`, so this tiny matcher interprets them (no regex crate among the test dependencies).
/// Anything else in a regex is refused at start, so a spec update cannot be misread silently.
pub(super) struct PathPattern(pub(super) Vec<Tok>);

pub(super) enum Tok {
    Lit(u8),
    Param { name: String, slashes: bool },
}

impl PathPattern {
    pub(super) fn parse(re: &str) -> Result<PathPattern, String> {
        let body = re
            .strip_prefix('^')
            .and_then(|r| r.strip_suffix('$'))
            .ok_or("expected ^...$")?;
        let mut toks = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            if let Some(r) = rest
                .strip_prefix("(?P<")
                .or_else(|| rest.strip_prefix("(?<"))
            {
                let (name, r) = r.split_once('>').ok_or("unterminated group name")?;
                let (slashes, r) = if let Some(r) = r.strip_prefix("[^/]+)") {
                    (false, r)
                } else if let Some(r) = r.strip_prefix(".+)") {
                    (true, r)
                } else {
                    return Err(format!("unsupported group body in {r:?}"));
                };
                toks.push(Tok::Param {
                    name: name.to_string(),
                    slashes,
                });
                rest = r;
            } else {
                let mut chars = rest.chars();
                let c = chars.next().unwrap();
                let c = match c {
                    '\\' => chars.next().ok_or("trailing backslash")?,
                    '.' | '[' | ']' | '(' | ')' | '{' | '}' | '*' | '+' | '?' | '|' | '^' | '$' => {
                        return Err(format!("unsupported regex syntax at {rest:?}"))
                    }
                    c => c,
                };
                if !c.is_ascii() {
                    return Err("non-ASCII literal".into());
                }
                toks.push(Tok::Lit(c as u8));
                rest = chars.as_str();
            }
        }
        Ok(PathPattern(toks))
    }

    /// The captured (still percent-encoded) parameters, or None.
    pub(super) fn matches(&self, path: &str) -> Option<BTreeMap<String, String>> {
        let mut spans = Vec::new();
        if !self.go(0, path.as_bytes(), 0, &mut spans) {
            return None;
        }
        let names = self.0.iter().filter_map(|t| match t {
            Tok::Param { name, .. } => Some(name.clone()),
            Tok::Lit(_) => None,
        });
        Some(
            names
                .zip(spans)
                .map(|(n, (a, b))| (n, path[a..b].to_string()))
                .collect(),
        )
    }

    /// Backtracking, greedy like the regex engine.
    pub(super) fn go(&self, t: usize, s: &[u8], i: usize, spans: &mut Vec<(usize, usize)>) -> bool {
        match self.0.get(t) {
            None => i == s.len(),
            Some(Tok::Lit(c)) => s.get(i) == Some(c) && self.go(t + 1, s, i + 1, spans),
            Some(Tok::Param { slashes, .. }) => {
                let mut end = i;
                while end < s.len() && (*slashes || s[end] != b'/') {
                    end += 1;
                }
                while end > i {
                    spans.push((i, end));
                    if self.go(t + 1, s, end, spans) {
                        return true;
                    }
                    spans.pop();
                    end -= 1;
                }
                false
            }
        }
    }
}
