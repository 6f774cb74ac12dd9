//! JSON Schema, as OpenAI clients send it (`response_format.json_schema.schema`, a tool's
//! `function.parameters`; written by pydantic's `model_json_schema()`, zod-to-json-schema or
//! zod 4's `z.toJSONSchema`), turned into the OpenAPI 3.0 subset Gemini's `Schema` object
//! accepts (`generationConfig.responseSchema`, `functionDeclarations[].parameters`).
//!
//! Gemini's `Schema` knows only `type`, `format`, `title`, `description`, `nullable`, `enum`,
//! `maxItems`, `minItems`, `properties`, `required`, `minProperties`, `maxProperties`,
//! `minLength`, `maxLength`, `pattern`, `example`, `anyOf`, `propertyOrdering`, `default`,
//! `items`, `minimum` and `maximum` (the `Schema` reference of the Gemini API), and answers
//! 400 to any other key (`Unknown name "const"`, `"additionalProperties"`: "Cannot find
//! field"). So the output holds those keys only, and:
//!
//! - `$ref` is inlined: any local JSON pointer (`#/$defs/X`, `#/definitions/X`,
//!   `#/properties/billing` as zod-to-json-schema writes for a reused schema, `#` for the
//!   root). Keys beside a `$ref` (pydantic puts `description` or `default` there) win over
//!   the referenced schema's. A reference reached again while it is being inlined is a
//!   cycle Gemini cannot express: 400 naming it. Remote references, anchors and pointers to
//!   nothing: 400. Nesting deeper than [`MAX_DEPTH`] or an output larger than [`MAX_NODES`]
//!   (references inlined many times): 400, never a stack overflow or an out-of-memory.
//! - Null: `{"type":"null"}` in `anyOf`/`oneOf`, `null` in a `type` list or in `enum`
//!   become `nullable: true`; one other alternative is merged into the schema, several stay
//!   an `anyOf`, and an alternative's own `nullable` moves up to the union. `oneOf`
//!   becomes `anyOf` (Gemini has no `oneOf`; when both are present `anyOf` is used); a
//!   nested `anyOf` is flattened into its parent, repeated alternatives are dropped. Keys
//!   beside an `anyOf` that constrain the value (`type`, `properties`, …) are moved into
//!   each alternative; annotations (`title`, `description`, `default`, `example`) stay
//!   beside it.
//! - A `type` list with several types (`["string","number"]`) becomes an `anyOf` with one
//!   alternative per type, each holding the keywords of its type: Gemini rejects a list
//!   (`Proto field is not repeating`).
//! - `allOf` is merged into one schema: properties and `required` joined, the tighter
//!   bound kept, otherwise later members and then the keys beside `allOf` win.
//! - `enum` / `const`: the reference defines `enum` as "Possible values of the element of
//!   Type.STRING with enum format", i.e. strings only. String values become
//!   `type: "string"` + `enum` (a `const` is a one-value `enum`; `format: "enum"` is not
//!   added, the structured-output guide's enum examples go without it). Numbers keep their
//!   type and become bounds: `const: 2` is `minimum: 2, maximum: 2` (exact); several
//!   numbers give the smallest and largest as bounds plus "allowed values: 1, 2" appended
//!   to the description. Booleans keep `type: "boolean"`; a single value is noted in the
//!   description. Values of several kinds (`["a", 1]`) become an `anyOf` with one
//!   alternative per kind. The JSON type of the answer is never changed (Google's Python
//!   SDK turns integer enums into strings; a client validating with its own schema would
//!   then refuse the answer), and no value outside the client's schema is allowed.
//! - `format`: the reference lists "for NUMBER type: float, double; for INTEGER type:
//!   int32, int64; for STRING type: enum, date-time"; Firebase's `Schema` reference adds
//!   that with the Gemini Developer API a format must be `enum` or `date-time`, "otherwise
//!   requests will fail". Other formats (`email`, `uuid`, `date`, `uri`, …) are removed and
//!   noted in the description (`format: uuid`) so the model still knows.
//! - `exclusiveMinimum`/`exclusiveMaximum` (number or draft-4 boolean form) become
//!   `minimum`/`maximum`: exact for integers (`> 0` is `>= 1`), the bound itself for numbers
//!   (slightly looser). `multipleOf`, `uniqueItems`, `additionalProperties`,
//!   `patternProperties`, `not`, `if`/`then`/`else`, `$schema`, `$id`, `$comment`,
//!   `discriminator`, `readOnly`, `deprecated`, … are dropped. `examples` gives `example`
//!   (its first value) when there is none.
//! - Keywords are kept only on the type they apply to (Gemini: `properties: only allowed
//!   for OBJECT type`, `items: field predicate failed: $type == Type.ARRAY`); a schema
//!   with `properties` but no `type` is an object, one with `items` an array.
//! - Objects: names in `required` that are not in `properties` are removed, `properties`
//!   keys are kept as written (a property may be called `type` or `$ref`); an empty
//!   `properties` is removed (Gemini: `properties: should be non-empty for OBJECT type`),
//!   so `{"type":"object","additionalProperties":…}` is `{"type":"object"}`.
//!   `propertyOrdering` is the properties' order as written (serde_json keeps it, built
//!   with `preserve_order`) for objects with at least two properties; one the client gave
//!   is kept, its unknown names removed and missing ones appended.
//! - Tuples (`prefixItems`, or draft-4 `items` as a list): Gemini arrays have one `items`
//!   schema, so it is the `anyOf` of the positions (plus the rest `items`), or the one
//!   schema when all are the same; `minItems`/`maxItems` are kept.
//! - `true` and `{}` (any value) stay `{}`; the schema `false` is a 400.
//! - Types are written lowercase, as clients send them (`"STRING"` is accepted and
//!   lowercased): the Gemini REST API accepts them, its function-calling guide's REST
//!   examples use `"type": "object"`.

use serde_json::{Map, Value};

use crate::error::GatewayError;

/// Deepest nesting of schemas accepted (each `properties`, `items`, `anyOf`, `allOf`
/// member or `$ref` is one level).
pub const MAX_DEPTH: usize = 64;
/// Largest converted schema accepted, in schema nodes plus copied values.
pub const MAX_NODES: usize = 20_000;

/// The Gemini `Schema` for a client's JSON Schema; `param` names it in errors (a 400
/// `invalid_request_error`), e.g. `response_format.json_schema.schema` or
/// `tools[2].function.parameters`.
pub fn gemini_schema(schema: &Value, param: &str) -> Result<Value, GatewayError> {
    let mut converter = Converter {
        root: schema,
        param,
        nodes: 0,
        inlining: Vec::new(),
    };
    converter.convert(schema, 0).map(Value::Object)
}

type Schema = Map<String, Value>;

/// Keys that describe a schema without constraining its value; beside an `anyOf` they stay
/// on the parent.
const ANNOTATIONS: &[&str] = &["title", "description", "default", "example", "nullable"];

/// Where a schema's conversion resumes: keywords of earlier stages are already handled.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Ref,
    AllOf,
    Union,
    Plain,
}

struct Converter<'a> {
    root: &'a Value,
    param: &'a str,
    nodes: usize,
    /// JSON pointers of the references being inlined, outermost first.
    inlining: Vec<String>,
}

impl<'a> Converter<'a> {
    fn error(&self, message: impl Into<String>) -> GatewayError {
        GatewayError::invalid_param(message, self.param)
    }

    fn charge(&mut self, nodes: usize) -> Result<(), GatewayError> {
        self.nodes += nodes;
        if self.nodes > MAX_NODES {
            return Err(self.error(format!(
                "the schema is too large for Gemini once its `$ref`s are inlined (more than {MAX_NODES} nodes)"
            )));
        }
        Ok(())
    }

    /// A copy of a value from the client's schema (`default`, `example`, `enum`), counted.
    fn copy(&mut self, value: &Value) -> Result<Value, GatewayError> {
        self.charge(value_nodes(value, MAX_NODES + 1))?;
        Ok(value.clone())
    }

    /// One complete schema.
    fn convert(&mut self, schema: &'a Value, depth: usize) -> Result<Schema, GatewayError> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!(
                "the schema is nested more than {MAX_DEPTH} levels deep"
            )));
        }
        self.charge(1)?;
        match schema {
            Value::Object(map) => {
                let mut out = self.node(map, Stage::Ref, depth)?;
                finish(&mut out);
                Ok(out)
            }
            Value::Bool(true) => Ok(Schema::new()),
            Value::Bool(false) => {
                Err(self.error("the schema `false` (no value is valid) cannot be sent to Gemini"))
            }
            other => Err(self.error(format!(
                "a schema must be a JSON object, not {}",
                kind_name(other)
            ))),
        }
    }

    /// A schema object from `stage` on; the result is not finished yet.
    fn node(
        &mut self,
        map: &'a Schema,
        stage: Stage,
        depth: usize,
    ) -> Result<Schema, GatewayError> {
        if stage <= Stage::Ref {
            if let Some(reference) = map.get("$ref") {
                return self.inline(map, reference, depth);
            }
        }
        if stage <= Stage::AllOf {
            if let Some(members) = map.get("allOf") {
                return self.all_of(map, members, depth);
            }
        }
        if stage <= Stage::Union && (map.contains_key("anyOf") || map.contains_key("oneOf")) {
            return self.union(map, depth);
        }
        self.plain(map, depth)
    }

    fn inline(
        &mut self,
        map: &'a Schema,
        reference: &Value,
        depth: usize,
    ) -> Result<Schema, GatewayError> {
        let Value::String(reference) = reference else {
            return Err(self.error("`$ref` must be a string"));
        };
        let (target, pointer) = self.resolve(reference)?;
        if self.inlining.contains(&pointer) {
            let name = if pointer.is_empty() {
                "`#` (the root schema)".to_string()
            } else {
                format!("`{}`", pointer.trim_start_matches('/'))
            };
            return Err(self.error(format!(
                "the schema is recursive through {name}; Gemini needs a schema without cycles"
            )));
        }
        self.inlining.push(pointer);
        let target = self.convert(target, depth + 1);
        self.inlining.pop();
        let siblings = self.node(map, Stage::AllOf, depth)?;
        Ok(merge(target?, siblings))
    }

    /// The schema a local reference points to, and its decoded JSON pointer.
    fn resolve(&self, reference: &str) -> Result<(&'a Value, String), GatewayError> {
        let Some(fragment) = reference.strip_prefix('#') else {
            return Err(self.error(format!(
                "`$ref` `{}` is not a local reference; only references into the same schema (`#/$defs/Name`) are supported",
                crate::error::excerpt(reference, 100)
            )));
        };
        let pointer = percent_decode(fragment);
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(self.error(format!(
                "`$ref` `{}` names an anchor; only JSON pointers such as `#/$defs/Name` are supported",
                crate::error::excerpt(reference, 100)
            )));
        }
        let target = if pointer.is_empty() {
            Some(self.root)
        } else {
            self.root.pointer(&pointer)
        };
        match target {
            Some(target) => Ok((target, pointer)),
            None => Err(self.error(format!(
                "`$ref` `{}` points to nothing in the schema",
                crate::error::excerpt(reference, 100)
            ))),
        }
    }

    fn all_of(
        &mut self,
        map: &'a Schema,
        members: &'a Value,
        depth: usize,
    ) -> Result<Schema, GatewayError> {
        let Value::Array(members) = members else {
            return Err(self.error("`allOf` must be an array of schemas"));
        };
        let mut out = Schema::new();
        // The merged value may be null only if every part that says what it is allows null.
        let mut typed = false;
        let mut all_nullable = true;
        for member in members {
            let member = self.convert(member, depth + 1)?;
            if member.contains_key("type") || member.contains_key("anyOf") {
                typed = true;
                all_nullable &= is_true(member.get("nullable"));
            }
            out = merge(out, member);
        }
        let own = self.node(map, Stage::Union, depth)?;
        let own_nullable = is_true(own.get("nullable"));
        if own.contains_key("type") || own.contains_key("anyOf") {
            typed = true;
            all_nullable &= own_nullable;
        }
        out = merge(out, own);
        out.remove("nullable");
        if own_nullable || (typed && all_nullable) {
            out.insert("nullable".into(), Value::Bool(true));
        }
        Ok(out)
    }

    fn union(&mut self, map: &'a Schema, depth: usize) -> Result<Schema, GatewayError> {
        let (key, alternatives) = match (map.get("anyOf"), map.get("oneOf")) {
            (Some(any), _) => ("anyOf", any),
            (None, Some(one)) => ("oneOf", one),
            (None, None) => return self.plain(map, depth),
        };
        let Value::Array(alternatives) = alternatives else {
            return Err(self.error(format!("`{key}` must be an array of schemas")));
        };
        let mut own = self.node(map, Stage::Plain, depth)?;
        let mut nullable = is_true(own.remove("nullable").as_ref());
        let mut branches: Vec<Schema> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for alternative in alternatives {
            let mut branch = self.convert(alternative, depth + 1)?;
            if branch.get("type").and_then(Value::as_str) == Some("null") {
                nullable = true;
                continue;
            }
            // The union admits null when any alternative does.
            nullable |= is_true(branch.remove("nullable").as_ref());
            if branch.contains_key("anyOf") && branch.len() == 1 {
                if let Some(Value::Array(nested)) = branch.remove("anyOf") {
                    for nested in nested {
                        if let Value::Object(nested) = nested {
                            push_unique(&mut branches, &mut seen, nested);
                        }
                    }
                }
                continue;
            }
            push_unique(&mut branches, &mut seen, branch);
        }
        let mut out = match branches.len() {
            0 => {
                // Only null is allowed.
                nullable = false;
                if !own.contains_key("type") {
                    own.insert("type".into(), Value::String("null".into()));
                }
                own
            }
            1 => merge(branches.pop().unwrap_or_default(), own),
            _ => {
                let (mut parent, constraints): (Schema, Schema) = own
                    .into_iter()
                    .partition(|(k, _)| ANNOTATIONS.contains(&k.as_str()));
                // The constraints are copied into every branch: the copies count too, so a
                // small schema cannot grow into a huge one.
                if !constraints.is_empty() {
                    let per_branch =
                        value_nodes(&Value::Object(constraints.clone()), MAX_NODES + 1);
                    self.charge(per_branch.saturating_mul(branches.len()))?;
                }
                let branches = branches
                    .into_iter()
                    .map(|branch| {
                        let mut branch = if constraints.is_empty() {
                            branch
                        } else {
                            merge(constraints.clone(), branch)
                        };
                        finish(&mut branch);
                        Value::Object(branch)
                    })
                    .collect();
                parent.insert("anyOf".into(), Value::Array(branches));
                parent
            }
        };
        if nullable {
            out.insert("nullable".into(), Value::Bool(true));
        }
        Ok(out)
    }

    /// A schema without `$ref`, `allOf`, `anyOf` or `oneOf`.
    fn plain(&mut self, map: &'a Schema, depth: usize) -> Result<Schema, GatewayError> {
        let mut nullable = is_true(map.get("nullable"));
        let mut types = self.types(map.get("type"))?;
        if types.len() > 1 && types.contains(&"null") {
            types.retain(|t| *t != "null");
            nullable = true;
        }
        let mut values: Option<Vec<&'a Value>> = match (map.get("const"), map.get("enum")) {
            (Some(value), _) => Some(vec![value]),
            (None, Some(Value::Array(values))) => Some(values.iter().collect()),
            (None, Some(_)) => return Err(self.error("`enum` must be an array")),
            (None, None) => None,
        };
        if let Some(values) = &mut values {
            if values.iter().any(|v| v.is_null()) {
                nullable = true;
                values.retain(|v| !v.is_null());
            }
            if types.is_empty() {
                types = if values.is_empty() {
                    vec!["null"]
                } else {
                    value_kinds(values)
                };
            }
        }
        if types == ["null"] {
            nullable = false;
        }
        let mut out = if types.len() > 1 {
            // One alternative per type, each with its type's keywords; annotations on top.
            let mut parent = Schema::new();
            self.annotations(map, &mut parent, Vec::new())?;
            let mut branches = Vec::new();
            for ty in types {
                self.charge(1)?;
                let mut branch = self.typed(map, Some(ty), values.as_deref(), false, depth + 1)?;
                finish(&mut branch);
                branches.push(Value::Object(branch));
            }
            parent.insert("anyOf".into(), Value::Array(branches));
            parent
        } else {
            self.typed(map, types.first().copied(), values.as_deref(), true, depth)?
        };
        if nullable {
            out.insert("nullable".into(), Value::Bool(true));
        }
        Ok(out)
    }

    /// The types a `type` keyword lists, lowercased, without repeats.
    fn types(&self, ty: Option<&Value>) -> Result<Vec<&'static str>, GatewayError> {
        let names: Vec<&Value> = match ty {
            None => return Ok(Vec::new()),
            Some(Value::Array(names)) => names.iter().collect(),
            Some(name) => vec![name],
        };
        let mut types = Vec::new();
        for name in names {
            let Some(name) = name.as_str() else {
                return Err(self.error("`type` must be a string or an array of strings"));
            };
            let ty = match name.to_ascii_lowercase().as_str() {
                "string" => "string",
                "number" => "number",
                "integer" => "integer",
                "boolean" => "boolean",
                "array" => "array",
                "object" => "object",
                "null" => "null",
                _ => {
                    return Err(self.error(format!(
                        "unsupported schema type `{}`; Gemini knows string, number, integer, boolean, array, object and null",
                        crate::error::excerpt(name, 40)
                    )))
                }
            };
            if !types.contains(&ty) {
                types.push(ty);
            }
        }
        Ok(types)
    }

    /// A schema of one type (or none), with the keywords that apply to it.
    fn typed(
        &mut self,
        map: &'a Schema,
        ty: Option<&'static str>,
        values: Option<&[&'a Value]>,
        with_annotations: bool,
        depth: usize,
    ) -> Result<Schema, GatewayError> {
        let ty = ty.or_else(|| {
            if map.contains_key("properties") {
                Some("object")
            } else if map.contains_key("items") || map.contains_key("prefixItems") {
                Some("array")
            } else {
                None
            }
        });
        let mut out = Schema::new();
        let mut notes = Vec::new();
        if let Some(ty) = ty {
            out.insert("type".into(), Value::String(ty.into()));
        }
        match ty {
            Some("string") => {
                format(map, &["enum", "date-time"], &mut out, &mut notes);
                if let Some(values) = values {
                    let strings: Vec<Value> = values
                        .iter()
                        .filter(|v| v.is_string())
                        .map(|v| (*v).clone())
                        .collect();
                    if !strings.is_empty() {
                        self.charge(strings.len())?;
                        out.insert("enum".into(), Value::Array(strings));
                    }
                }
                if let Some(Value::String(pattern)) = map.get("pattern") {
                    out.insert("pattern".into(), Value::String(pattern.clone()));
                }
                copy_count(map, &mut out, "minLength");
                copy_count(map, &mut out, "maxLength");
            }
            Some(ty @ ("integer" | "number")) => {
                let integer = ty == "integer";
                let formats: &[&str] = if integer {
                    &["int32", "int64"]
                } else {
                    &["float", "double"]
                };
                format(map, formats, &mut out, &mut notes);
                let (low, high) = bounds(map, integer);
                let mut low = low;
                let mut high = high;
                if let Some(values) = values {
                    let numbers: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
                    if !numbers.is_empty() {
                        let min = numbers.iter().copied().fold(f64::INFINITY, f64::min);
                        let max = numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        low = Some(low.map_or(min, |l| l.max(min)));
                        high = Some(high.map_or(max, |h| h.min(max)));
                        if numbers.len() > 1 {
                            notes.push(allowed_values(values, Value::is_number));
                        }
                    }
                }
                if let Some(low) = low {
                    out.insert("minimum".into(), number(low));
                }
                if let Some(high) = high {
                    out.insert("maximum".into(), number(high));
                }
            }
            Some("boolean") => {
                if let Some(values) = values {
                    let has = |b: bool| values.iter().any(|v| v.as_bool() == Some(b));
                    if has(true) != has(false) {
                        notes.push(allowed_values(values, Value::is_boolean));
                    }
                }
            }
            Some("array") => {
                if let Some(items) = self.items(map, depth)? {
                    out.insert("items".into(), Value::Object(items));
                }
                copy_count(map, &mut out, "minItems");
                copy_count(map, &mut out, "maxItems");
            }
            Some("object") => {
                match map.get("properties") {
                    Some(Value::Object(properties)) => {
                        let mut converted = Schema::new();
                        for (name, schema) in properties {
                            let schema = self.convert(schema, depth + 1)?;
                            converted.insert(name.clone(), Value::Object(schema));
                        }
                        out.insert("properties".into(), Value::Object(converted));
                    }
                    Some(_) => return Err(self.error("`properties` must be an object")),
                    None => {}
                }
                for key in ["required", "propertyOrdering"] {
                    if let Some(Value::Array(names)) = map.get(key) {
                        let names: Vec<Value> =
                            names.iter().filter(|n| n.is_string()).cloned().collect();
                        self.charge(names.len())?;
                        out.insert(key.into(), Value::Array(names));
                    }
                }
                copy_count(map, &mut out, "minProperties");
                copy_count(map, &mut out, "maxProperties");
            }
            _ => {}
        }
        if with_annotations {
            self.annotations(map, &mut out, notes)?;
        } else if !notes.is_empty() {
            out.insert("description".into(), Value::String(describe(None, &notes)));
        }
        Ok(out)
    }

    /// `title`, `description` (with `notes` added), `default` and `example`.
    fn annotations(
        &mut self,
        map: &Schema,
        out: &mut Schema,
        notes: Vec<String>,
    ) -> Result<(), GatewayError> {
        if let Some(Value::String(title)) = map.get("title") {
            out.insert("title".into(), Value::String(title.clone()));
        }
        let description = map.get("description").and_then(Value::as_str);
        if description.is_some() || !notes.is_empty() {
            out.insert(
                "description".into(),
                Value::String(describe(description, &notes)),
            );
        }
        if let Some(default) = map.get("default") {
            let default = self.copy(default)?;
            out.insert("default".into(), default);
        }
        let example = match (map.get("example"), map.get("examples")) {
            (Some(example), _) => Some(example),
            (None, Some(Value::Array(examples))) => examples.first(),
            _ => None,
        };
        if let Some(example) = example {
            let example = self.copy(example)?;
            out.insert("example".into(), example);
        }
        Ok(())
    }

    /// An array's one `items` schema; tuples become the `anyOf` of their positions.
    fn items(&mut self, map: &'a Schema, depth: usize) -> Result<Option<Schema>, GatewayError> {
        let mut positions = Vec::new();
        let mut seen = std::collections::HashSet::new();
        if let Some(prefix) = map.get("prefixItems") {
            let Value::Array(prefix) = prefix else {
                return Err(self.error("`prefixItems` must be an array of schemas"));
            };
            for schema in prefix {
                let schema = self.convert(schema, depth + 1)?;
                push_unique(&mut positions, &mut seen, schema);
            }
        }
        match map.get("items") {
            None | Some(Value::Bool(false)) => {}
            Some(Value::Array(tuple)) => {
                for schema in tuple {
                    let schema = self.convert(schema, depth + 1)?;
                    push_unique(&mut positions, &mut seen, schema);
                }
            }
            Some(items) => {
                let items = self.convert(items, depth + 1)?;
                if !map.contains_key("prefixItems") {
                    return Ok(Some(items));
                }
                push_unique(&mut positions, &mut seen, items);
            }
        }
        Ok(match positions.len() {
            0 => None,
            1 => positions.pop(),
            _ => {
                let mut union = Schema::new();
                let positions = positions.into_iter().map(Value::Object).collect();
                union.insert("anyOf".into(), Value::Array(positions));
                Some(union)
            }
        })
    }
}

/// Keeps a supported `format`; notes any other one.
fn format(map: &Schema, supported: &[&str], out: &mut Schema, notes: &mut Vec<String>) {
    if let Some(Value::String(format)) = map.get("format") {
        if supported.contains(&format.as_str()) {
            out.insert("format".into(), Value::String(format.clone()));
        } else if !format.is_empty() {
            notes.push(format!("format: {}", crate::error::excerpt(format, 60)));
        }
    }
}

/// `over` merged into `base`: properties and `required` joined, the tighter bound kept,
/// any other key of `over` wins.
fn merge(mut base: Schema, over: Schema) -> Schema {
    for (key, value) in over {
        match (key.as_str(), base.get_mut(&key), value) {
            ("properties", Some(Value::Object(properties)), Value::Object(more)) => {
                for (name, schema) in more {
                    properties.insert(name, schema);
                }
            }
            ("required", Some(Value::Array(names)), Value::Array(more)) => {
                for name in more {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
            (
                "minimum" | "minLength" | "minItems" | "minProperties",
                Some(current),
                Value::Number(n),
            ) => {
                if current.as_f64().is_none_or(|c| n.as_f64() > Some(c)) {
                    *current = Value::Number(n);
                }
            }
            (
                "maximum" | "maxLength" | "maxItems" | "maxProperties",
                Some(current),
                Value::Number(n),
            ) => {
                if current.as_f64().is_none_or(|c| n.as_f64() < Some(c)) {
                    *current = Value::Number(n);
                }
            }
            (_, _, value) => {
                base.insert(key, value);
            }
        }
    }
    base
}

/// Keys Gemini allows on a schema of each type, beyond `type`, annotations and `anyOf`.
fn applies(ty: &str, key: &str) -> bool {
    match key {
        "type" | "title" | "description" | "default" | "example" | "nullable" | "anyOf" => true,
        "format" => matches!(ty, "string" | "number" | "integer"),
        "enum" | "pattern" | "minLength" | "maxLength" => ty == "string",
        "minimum" | "maximum" => matches!(ty, "number" | "integer"),
        "items" | "minItems" | "maxItems" => ty == "array",
        "properties" | "required" | "propertyOrdering" | "minProperties" | "maxProperties" => {
            ty == "object"
        }
        _ => false,
    }
}

/// Makes a converted schema consistent; safe to run again after a merge.
fn finish(schema: &mut Schema) {
    if !schema.contains_key("type") {
        if schema.contains_key("properties") {
            schema.insert("type".into(), Value::String("object".into()));
        } else if schema.contains_key("items") {
            schema.insert("type".into(), Value::String("array".into()));
        }
    }
    if let Some(ty) = schema
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_string)
    {
        schema.retain(|key, _| applies(&ty, key));
    }
    if !is_true(schema.get("nullable")) {
        schema.remove("nullable");
    }
    let names: Vec<String> = match schema.get("properties") {
        Some(Value::Object(properties)) => properties.keys().cloned().collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        schema.remove("properties");
    }
    // Sets, not lists: a schema with thousands of properties stays linear.
    let known: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    let keep = |list: Option<Value>| -> Vec<String> {
        let mut kept: Vec<String> = Vec::new();
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        if let Some(Value::Array(list)) = list {
            for name in list {
                if let Value::String(name) = name {
                    if known.contains(name.as_str()) && seen.insert(name.clone()) {
                        kept.push(name);
                    }
                }
            }
        }
        kept
    };
    let required = keep(schema.remove("required"));
    if !required.is_empty() {
        schema.insert("required".into(), strings(required));
    }
    let given = schema.remove("propertyOrdering");
    let given_any = given.is_some();
    let mut ordering = keep(given);
    if names.len() >= 2 || (given_any && !names.is_empty()) {
        let ordered: std::collections::HashSet<String> = ordering.iter().cloned().collect();
        for name in &names {
            if !ordered.contains(name) {
                ordering.push(name.clone());
            }
        }
        schema.insert("propertyOrdering".into(), strings(ordering));
    }
}

fn strings(names: Vec<String>) -> Value {
    Value::Array(names.into_iter().map(Value::String).collect())
}

/// Appends `schema` unless an equal one is there. Alternatives are compared by their JSON
/// text through a set, so thousands of them stay linear.
fn push_unique(
    list: &mut Vec<Schema>,
    seen: &mut std::collections::HashSet<String>,
    schema: Schema,
) {
    if seen.insert(Value::Object(schema.clone()).to_string()) {
        list.push(schema);
    }
}

fn is_true(value: Option<&Value>) -> bool {
    matches!(value, Some(Value::Bool(true)))
}

/// The kinds of `enum` values, as schema types, in order of first appearance: numbers are
/// `integer` when all are whole, else `number`. Arrays and objects cannot be expressed.
fn value_kinds(values: &[&Value]) -> Vec<&'static str> {
    let numeric = if values
        .iter()
        .filter(|v| v.is_number())
        .all(|v| v.is_i64() || v.is_u64())
    {
        "integer"
    } else {
        "number"
    };
    let mut kinds = Vec::new();
    for value in values {
        let kind = match value {
            Value::String(_) => "string",
            Value::Number(_) => numeric,
            Value::Bool(_) => "boolean",
            _ => continue,
        };
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    kinds
}

/// `minimum` and `maximum` with the exclusive bounds folded in (exact for integers).
fn bounds(map: &Schema, integer: bool) -> (Option<f64>, Option<f64>) {
    let mut low = map.get("minimum").and_then(Value::as_f64);
    let mut high = map.get("maximum").and_then(Value::as_f64);
    match map.get("exclusiveMinimum") {
        Some(Value::Number(n)) => {
            if let Some(n) = n.as_f64() {
                let n = if integer { n.floor() + 1.0 } else { n };
                low = Some(low.map_or(n, |l| l.max(n)));
            }
        }
        Some(Value::Bool(true)) if integer => low = low.map(|l| l.floor() + 1.0),
        _ => {}
    }
    match map.get("exclusiveMaximum") {
        Some(Value::Number(n)) => {
            if let Some(n) = n.as_f64() {
                let n = if integer { n.ceil() - 1.0 } else { n };
                high = Some(high.map_or(n, |h| h.min(n)));
            }
        }
        Some(Value::Bool(true)) if integer => high = high.map(|h| h.ceil() - 1.0),
        _ => {}
    }
    (low, high)
}

/// A JSON number, written as an integer when it is one.
fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() <= 9_007_199_254_740_992.0 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

/// A count keyword (`minLength`, `maxItems`, …) when it is a whole number ≥ 0.
fn copy_count(map: &Schema, out: &mut Schema, key: &str) {
    let count = map.get(key).and_then(|v| {
        v.as_u64().or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 9_007_199_254_740_992.0)
                .map(|f| f as u64)
        })
    });
    if let Some(count) = count {
        out.insert(key.into(), Value::from(count));
    }
}

fn allowed_values(values: &[&Value], kind: fn(&Value) -> bool) -> String {
    let listed: Vec<String> = values
        .iter()
        .filter(|v| kind(v))
        .map(|v| v.to_string())
        .collect();
    format!("allowed values: {}", listed.join(", "))
}

/// A description with notes on what Gemini's schema cannot say.
fn describe(description: Option<&str>, notes: &[String]) -> String {
    let notes = notes.join("; ");
    match description {
        Some(description) if notes.is_empty() => description.to_string(),
        Some(description) if !description.trim().is_empty() => format!("{description} ({notes})"),
        _ => {
            // The notes are the gateway's own English: an ASCII first letter.
            let mut notes = notes;
            if let Some(first) = notes.get_mut(..1) {
                first.make_ascii_uppercase();
            }
            notes
        }
    }
}

/// Nodes in a JSON value, counting stops once `limit` is reached.
fn value_nodes(value: &Value, limit: usize) -> usize {
    let mut count = 0;
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        count += 1;
        if count >= limit {
            break;
        }
        match value {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    count
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A URI fragment with its `%XX` escapes decoded (left as is when they are not UTF-8).
fn percent_decode(fragment: &str) -> String {
    if !fragment.contains('%') {
        return fragment.to_string();
    }
    let bytes = fragment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| fragment.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Real generator outputs, printed with `json.dumps` / `JSON.stringify`:
    //
    // PYDANTIC_* — pydantic 2.14.4, `Model.model_json_schema()` of:
    //   class Address(BaseModel): street: str; city: str
    //   class Company(BaseModel): name: str; address: Address
    //   class Person(BaseModel): """A person."""; name: str = Field(description="Full name");
    //       employer: Company
    //   class Optionals(BaseModel): nickname: Optional[str] = None;
    //       age: Optional[int] = Field(default=None, description="Age in years");
    //       address: Optional[Address] = None
    //   class LineItem(BaseModel): sku: str; quantity: int = Field(ge=1)
    //   class Order(BaseModel): items: list[LineItem]; tags: list[str] = []
    //   class Color(str, Enum): red = "red"; green = "green"
    //   class Priority(IntEnum): low = 1; high = 2
    //   class Enums(BaseModel): color: Color; size: Literal["s", "m", "l"];
    //       priority: Priority; maybe_color: Optional[Color] = None
    //   class Consts(BaseModel): kind: Literal["event"]; version: Literal[2]; flag: Literal[True]
    //   class TreeNode(BaseModel): value: int; children: list["TreeNode"] = []
    //   class Strict(BaseModel): model_config = ConfigDict(extra="forbid"); id: UUID;
    //       when: datetime; day: date;
    //       email: str = Field(pattern=r"^[^@]+@[^@]+$", max_length=100);
    //       score: float = Field(gt=0, lt=1); count: int = Field(gt=0, le=10, multiple_of=2);
    //       pair: tuple[int, str]; meta: dict[str, int]
    //   class Cat(BaseModel): pet_type: Literal["cat"]; meows: int
    //   class Dog(BaseModel): pet_type: Literal["dog"]; barks: float
    //   class Owner(BaseModel): pet: Union[Cat, Dog] = Field(discriminator="pet_type");
    //       id: Union[int, str]
    //
    // ZOD3_* — zod 3.25.76 + zod-to-json-schema 3.25.2, `zodToJsonSchema(schema)` of:
    //   Address = z.object({ street: z.string(), city: z.string() })
    //   nullableOptional = z.object({ name: z.string().describe("Name"),
    //       nick: z.string().nullable(), age: z.number().int().optional(),
    //       note: z.string().nullable().optional(), color: z.enum(["red", "green"]).nullable(),
    //       address: Address.nullable() })       (also with { target: "openAi" }: OPENAI_TARGET)
    //   discriminated = z.object({ event: z.discriminatedUnion("kind", [
    //       z.object({ kind: z.literal("click"), x: z.number(), y: z.number() }),
    //       z.object({ kind: z.literal("key"), key: z.string() }) ]) })
    //   reused = z.object({ billing: Address, shipping: Address })
    //   misc = z.object({ email: z.string().email(), id: z.string().uuid(),
    //       when: z.string().datetime(), tags: z.array(z.string()).min(1).max(5),
    //       count: z.number().int().positive(), mixed: z.union([z.string(), z.number()]),
    //       lit: z.literal(3), rec: z.record(z.string(), z.number()) }).strict()
    //   recursive: Category = z.lazy(() => z.object({ name: z.string(),
    //       subcategories: z.array(Category) }))
    //
    // ZOD4_* — zod 4.6.7, `z.toJSONSchema(schema)` of the same shapes (z.int() for integers,
    //   oneOf for the discriminated union, a getter for the recursive Category), and
    //   registry = z.object({ a: Addr, b: Addr.optional(),
    //       tuple: z.tuple([z.string(), z.number()]) }) with
    //   Addr = Address.meta({ id: "Addr", description: "Postal address" })

    const PYDANTIC_PERSON: &str = r##"{"$defs":{"Address":{"properties":{"street":{"title":"Street","type":"string"},"city":{"title":"City","type":"string"}},"required":["street","city"],"title":"Address","type":"object"},"Company":{"properties":{"name":{"title":"Name","type":"string"},"address":{"$ref":"#/$defs/Address"}},"required":["name","address"],"title":"Company","type":"object"}},"description":"A person.","properties":{"name":{"description":"Full name","title":"Name","type":"string"},"employer":{"$ref":"#/$defs/Company"}},"required":["name","employer"],"title":"Person","type":"object"}"##;
    const PYDANTIC_OPTIONALS: &str = r##"{"$defs":{"Address":{"properties":{"street":{"title":"Street","type":"string"},"city":{"title":"City","type":"string"}},"required":["street","city"],"title":"Address","type":"object"}},"properties":{"nickname":{"anyOf":[{"type":"string"},{"type":"null"}],"default":null,"title":"Nickname"},"age":{"anyOf":[{"type":"integer"},{"type":"null"}],"default":null,"description":"Age in years","title":"Age"},"address":{"anyOf":[{"$ref":"#/$defs/Address"},{"type":"null"}],"default":null}},"title":"Optionals","type":"object"}"##;
    const PYDANTIC_ORDER: &str = r##"{"$defs":{"LineItem":{"properties":{"sku":{"title":"Sku","type":"string"},"quantity":{"minimum":1,"title":"Quantity","type":"integer"}},"required":["sku","quantity"],"title":"LineItem","type":"object"}},"properties":{"items":{"items":{"$ref":"#/$defs/LineItem"},"title":"Items","type":"array"},"tags":{"default":[],"items":{"type":"string"},"title":"Tags","type":"array"}},"required":["items"],"title":"Order","type":"object"}"##;
    const PYDANTIC_ENUMS: &str = r##"{"$defs":{"Color":{"enum":["red","green"],"title":"Color","type":"string"},"Priority":{"enum":[1,2],"title":"Priority","type":"integer"}},"properties":{"color":{"$ref":"#/$defs/Color"},"size":{"enum":["s","m","l"],"title":"Size","type":"string"},"priority":{"$ref":"#/$defs/Priority"},"maybe_color":{"anyOf":[{"$ref":"#/$defs/Color"},{"type":"null"}],"default":null}},"required":["color","size","priority"],"title":"Enums","type":"object"}"##;
    const PYDANTIC_CONSTS: &str = r##"{"properties":{"kind":{"const":"event","title":"Kind","type":"string"},"version":{"const":2,"title":"Version","type":"integer"},"flag":{"const":true,"title":"Flag","type":"boolean"}},"required":["kind","version","flag"],"title":"Consts","type":"object"}"##;
    const PYDANTIC_TREE_NODE: &str = r##"{"$defs":{"TreeNode":{"properties":{"value":{"title":"Value","type":"integer"},"children":{"default":[],"items":{"$ref":"#/$defs/TreeNode"},"title":"Children","type":"array"}},"required":["value"],"title":"TreeNode","type":"object"}},"$ref":"#/$defs/TreeNode"}"##;
    const PYDANTIC_STRICT: &str = r##"{"additionalProperties":false,"properties":{"id":{"format":"uuid","title":"Id","type":"string"},"when":{"format":"date-time","title":"When","type":"string"},"day":{"format":"date","title":"Day","type":"string"},"email":{"maxLength":100,"pattern":"^[^@]+@[^@]+$","title":"Email","type":"string"},"score":{"exclusiveMaximum":1,"exclusiveMinimum":0,"title":"Score","type":"number"},"count":{"exclusiveMinimum":0,"maximum":10,"multipleOf":2,"title":"Count","type":"integer"},"pair":{"maxItems":2,"minItems":2,"prefixItems":[{"type":"integer"},{"type":"string"}],"title":"Pair","type":"array"},"meta":{"additionalProperties":{"type":"integer"},"title":"Meta","type":"object"}},"required":["id","when","day","email","score","count","pair","meta"],"title":"Strict","type":"object"}"##;
    const PYDANTIC_OWNER: &str = r##"{"$defs":{"Cat":{"properties":{"pet_type":{"const":"cat","title":"Pet Type","type":"string"},"meows":{"title":"Meows","type":"integer"}},"required":["pet_type","meows"],"title":"Cat","type":"object"},"Dog":{"properties":{"pet_type":{"const":"dog","title":"Pet Type","type":"string"},"barks":{"title":"Barks","type":"number"}},"required":["pet_type","barks"],"title":"Dog","type":"object"}},"properties":{"pet":{"discriminator":{"mapping":{"cat":"#/$defs/Cat","dog":"#/$defs/Dog"},"propertyName":"pet_type"},"oneOf":[{"$ref":"#/$defs/Cat"},{"$ref":"#/$defs/Dog"}],"title":"Pet"},"id":{"anyOf":[{"type":"integer"},{"type":"string"}],"title":"Id"}},"required":["pet","id"],"title":"Owner","type":"object"}"##;
    const ZOD3_NULLABLE_OPTIONAL: &str = r##"{"type":"object","properties":{"name":{"type":"string","description":"Name"},"nick":{"type":["string","null"]},"age":{"type":"integer"},"note":{"type":["string","null"]},"color":{"anyOf":[{"type":"string","enum":["red","green"]},{"type":"null"}]},"address":{"anyOf":[{"type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"}},"required":["street","city"],"additionalProperties":false},{"type":"null"}]}},"required":["name","nick","color","address"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"}"##;
    const ZOD3_DISCRIMINATED: &str = r##"{"type":"object","properties":{"event":{"anyOf":[{"type":"object","properties":{"kind":{"type":"string","const":"click"},"x":{"type":"number"},"y":{"type":"number"}},"required":["kind","x","y"],"additionalProperties":false},{"type":"object","properties":{"kind":{"type":"string","const":"key"},"key":{"type":"string"}},"required":["kind","key"],"additionalProperties":false}]}},"required":["event"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"}"##;
    const ZOD3_REUSED: &str = r##"{"type":"object","properties":{"billing":{"type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"}},"required":["street","city"],"additionalProperties":false},"shipping":{"$ref":"#/properties/billing"}},"required":["billing","shipping"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"}"##;
    const ZOD3_MISC: &str = r##"{"type":"object","properties":{"email":{"type":"string","format":"email"},"id":{"type":"string","format":"uuid"},"when":{"type":"string","format":"date-time"},"tags":{"type":"array","items":{"type":"string"},"minItems":1,"maxItems":5},"count":{"type":"integer","exclusiveMinimum":0},"mixed":{"type":["string","number"]},"lit":{"type":"number","const":3},"rec":{"type":"object","additionalProperties":{"type":"number"}}},"required":["email","id","when","tags","count","mixed","lit","rec"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"}"##;
    const ZOD3_RECURSIVE: &str = r##"{"type":"object","properties":{"name":{"type":"string"},"subcategories":{"type":"array","items":{"$ref":"#"}}},"required":["name","subcategories"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"}"##;
    const ZOD3_OPENAI_TARGET: &str = r##"{"type":"object","properties":{"name":{"type":"string","description":"Name"},"nick":{"type":["string","null"]},"age":{"anyOf":[{"type":"integer"},{"type":"null"}]},"note":{"type":["string","null"]},"color":{"anyOf":[{"type":"string","enum":["red","green"]},{"type":"null"}]},"address":{"anyOf":[{"type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"}},"required":["street","city"],"additionalProperties":false},{"type":"null"}]}},"required":["name","nick","age","note","color","address"],"additionalProperties":false,"$schema":"https://json-schema.org/draft/2019-09/schema#"}"##;
    const ZOD4_NULLABLE_OPTIONAL: &str = r##"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{"name":{"type":"string","description":"Name"},"nick":{"type":["string","null"]},"age":{"type":"integer","minimum":-9007199254740991,"maximum":9007199254740991},"color":{"anyOf":[{"type":"string","enum":["red","green"]},{"type":"null"}]},"address":{"anyOf":[{"type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"}},"required":["street","city"],"additionalProperties":false},{"type":"null"}]}},"required":["name","nick","color","address"],"additionalProperties":false}"##;
    const ZOD4_DISCRIMINATED: &str = r##"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{"event":{"oneOf":[{"type":"object","properties":{"kind":{"type":"string","const":"click"},"x":{"type":"number"}},"required":["kind","x"],"additionalProperties":false},{"type":"object","properties":{"kind":{"type":"string","const":"key"},"key":{"type":"string"}},"required":["kind","key"],"additionalProperties":false}]}},"required":["event"],"additionalProperties":false}"##;
    const ZOD4_REUSED: &str = r##"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{"billing":{"type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"}},"required":["street","city"],"additionalProperties":false},"shipping":{"type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"}},"required":["street","city"],"additionalProperties":false}},"required":["billing","shipping"],"additionalProperties":false}"##;
    const ZOD4_REGISTRY: &str = r##"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{"a":{"$ref":"#/$defs/Addr"},"b":{"$ref":"#/$defs/Addr"},"tuple":{"type":"array","prefixItems":[{"type":"string"},{"type":"number"}],"items":false,"minItems":2,"maxItems":2}},"required":["a","tuple"],"additionalProperties":false,"$defs":{"Addr":{"type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"}},"required":["street","city"],"additionalProperties":false,"description":"Postal address"}}}"##;
    const ZOD4_MISC: &str = r##"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{"email":{"type":"string","format":"email","pattern":"^(?:[A-Za-z0-9_'+\\-]+\\.)*[A-Za-z0-9_'+\\-]*[A-Za-z0-9_+-]@(?:[A-Za-z0-9][A-Za-z0-9\\-]*\\.)+[A-Za-z]{2,}$"},"when":{"type":"string","format":"date-time","pattern":"^(?:(?:\\d\\d[2468][048]|\\d\\d[13579][26]|\\d\\d0[48]|[02468][048]00|[13579][26]00)-02-29|\\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\\d|30)|(?:02)-(?:0[1-9]|1\\d|2[0-8])))T(?:(?:[01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(?:\\.\\d+)?(?:Z))$"},"lit":{"type":"number","const":3},"count":{"type":"integer","exclusiveMinimum":0,"maximum":9007199254740991}},"required":["email","when","lit","count"],"additionalProperties":false}"##;
    const ZOD4_RECURSIVE: &str = r##"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{"name":{"type":"string"},"subcategories":{"type":"array","items":{"$ref":"#"}}},"required":["name","subcategories"],"additionalProperties":false}"##;

    fn convert(raw: &str) -> Value {
        let schema: Value = serde_json::from_str(raw).expect("fixture is JSON");
        gemini_schema(&schema, "response_format.json_schema.schema").expect("converts")
    }

    fn error_of(schema: &Value) -> (u16, String, Value) {
        let error = gemini_schema(schema, "tools[2].function.parameters").unwrap_err();
        let body = error.to_body();
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (error.status(), message, body["error"]["param"].clone())
    }

    fn street_city() -> Value {
        json!({
            "type": "object",
            "properties": { "street": { "type": "string" }, "city": { "type": "string" } },
            "required": ["street", "city"],
            "propertyOrdering": ["street", "city"]
        })
    }

    #[test]
    fn gemini_schema_pydantic_nested_models_are_inlined() {
        assert_eq!(
            convert(PYDANTIC_PERSON),
            json!({
                "type": "object",
                "title": "Person",
                "description": "A person.",
                "properties": {
                    "name": { "type": "string", "title": "Name", "description": "Full name" },
                    "employer": {
                        "type": "object",
                        "title": "Company",
                        "properties": {
                            "name": { "type": "string", "title": "Name" },
                            "address": {
                                "type": "object",
                                "title": "Address",
                                "properties": {
                                    "street": { "type": "string", "title": "Street" },
                                    "city": { "type": "string", "title": "City" }
                                },
                                "required": ["street", "city"],
                                "propertyOrdering": ["street", "city"]
                            }
                        },
                        "required": ["name", "address"],
                        "propertyOrdering": ["name", "address"]
                    }
                },
                "required": ["name", "employer"],
                "propertyOrdering": ["name", "employer"]
            })
        );
    }

    #[test]
    fn gemini_schema_pydantic_optional_fields_are_nullable() {
        assert_eq!(
            convert(PYDANTIC_OPTIONALS),
            json!({
                "type": "object",
                "title": "Optionals",
                "properties": {
                    "nickname": {
                        "type": "string", "title": "Nickname", "default": null, "nullable": true
                    },
                    "age": {
                        "type": "integer",
                        "title": "Age",
                        "description": "Age in years",
                        "default": null,
                        "nullable": true
                    },
                    "address": {
                        "type": "object",
                        "title": "Address",
                        "properties": {
                            "street": { "type": "string", "title": "Street" },
                            "city": { "type": "string", "title": "City" }
                        },
                        "required": ["street", "city"],
                        "propertyOrdering": ["street", "city"],
                        "default": null,
                        "nullable": true
                    }
                },
                "propertyOrdering": ["nickname", "age", "address"]
            })
        );
    }

    #[test]
    fn gemini_schema_pydantic_list_of_objects() {
        assert_eq!(
            convert(PYDANTIC_ORDER),
            json!({
                "type": "object",
                "title": "Order",
                "properties": {
                    "items": {
                        "type": "array",
                        "title": "Items",
                        "items": {
                            "type": "object",
                            "title": "LineItem",
                            "properties": {
                                "sku": { "type": "string", "title": "Sku" },
                                "quantity": { "type": "integer", "title": "Quantity", "minimum": 1 }
                            },
                            "required": ["sku", "quantity"],
                            "propertyOrdering": ["sku", "quantity"]
                        }
                    },
                    "tags": {
                        "type": "array", "title": "Tags", "items": { "type": "string" }, "default": []
                    }
                },
                "required": ["items"],
                "propertyOrdering": ["items", "tags"]
            })
        );
    }

    #[test]
    fn gemini_schema_pydantic_enums() {
        assert_eq!(
            convert(PYDANTIC_ENUMS),
            json!({
                "type": "object",
                "title": "Enums",
                "properties": {
                    "color": { "type": "string", "title": "Color", "enum": ["red", "green"] },
                    "size": { "type": "string", "title": "Size", "enum": ["s", "m", "l"] },
                    // Gemini enums are strings: an IntEnum stays an integer, bounded.
                    "priority": {
                        "type": "integer",
                        "title": "Priority",
                        "description": "Allowed values: 1, 2",
                        "minimum": 1,
                        "maximum": 2
                    },
                    "maybe_color": {
                        "type": "string",
                        "title": "Color",
                        "enum": ["red", "green"],
                        "default": null,
                        "nullable": true
                    }
                },
                "required": ["color", "size", "priority"],
                "propertyOrdering": ["color", "size", "priority", "maybe_color"]
            })
        );
    }

    #[test]
    fn gemini_schema_pydantic_single_literals() {
        assert_eq!(
            convert(PYDANTIC_CONSTS),
            json!({
                "type": "object",
                "title": "Consts",
                "properties": {
                    "kind": { "type": "string", "title": "Kind", "enum": ["event"] },
                    "version": { "type": "integer", "title": "Version", "minimum": 2, "maximum": 2 },
                    "flag": {
                        "type": "boolean", "title": "Flag", "description": "Allowed values: true"
                    }
                },
                "required": ["kind", "version", "flag"],
                "propertyOrdering": ["kind", "version", "flag"]
            })
        );
    }

    #[test]
    fn gemini_schema_recursive_models_are_refused() {
        for (raw, name) in [
            (PYDANTIC_TREE_NODE, "`$defs/TreeNode`"),
            (ZOD3_RECURSIVE, "`#` (the root schema)"),
            (ZOD4_RECURSIVE, "`#` (the root schema)"),
        ] {
            let (status, message, param) = error_of(&serde_json::from_str(raw).unwrap());
            assert_eq!(status, 400);
            assert_eq!(
                message,
                format!(
                    "the schema is recursive through {name}; Gemini needs a schema without cycles"
                )
            );
            assert_eq!(param, "tools[2].function.parameters");
        }
    }

    #[test]
    fn gemini_schema_pydantic_strict_model_formats_and_bounds() {
        assert_eq!(
            convert(PYDANTIC_STRICT),
            json!({
                "type": "object",
                "title": "Strict",
                "properties": {
                    "id": { "type": "string", "title": "Id", "description": "Format: uuid" },
                    "when": { "type": "string", "title": "When", "format": "date-time" },
                    "day": { "type": "string", "title": "Day", "description": "Format: date" },
                    "email": {
                        "type": "string", "title": "Email", "pattern": "^[^@]+@[^@]+$", "maxLength": 100
                    },
                    "score": { "type": "number", "title": "Score", "minimum": 0, "maximum": 1 },
                    "count": { "type": "integer", "title": "Count", "minimum": 1, "maximum": 10 },
                    "pair": {
                        "type": "array",
                        "title": "Pair",
                        "items": { "anyOf": [{ "type": "integer" }, { "type": "string" }] },
                        "minItems": 2,
                        "maxItems": 2
                    },
                    "meta": { "type": "object", "title": "Meta" }
                },
                "required": ["id", "when", "day", "email", "score", "count", "pair", "meta"],
                "propertyOrdering": ["id", "when", "day", "email", "score", "count", "pair", "meta"]
            })
        );
    }

    #[test]
    fn gemini_schema_pydantic_discriminated_union() {
        assert_eq!(
            convert(PYDANTIC_OWNER),
            json!({
                "type": "object",
                "title": "Owner",
                "properties": {
                    "pet": {
                        "title": "Pet",
                        "anyOf": [
                            {
                                "type": "object",
                                "title": "Cat",
                                "properties": {
                                    "pet_type": { "type": "string", "title": "Pet Type", "enum": ["cat"] },
                                    "meows": { "type": "integer", "title": "Meows" }
                                },
                                "required": ["pet_type", "meows"],
                                "propertyOrdering": ["pet_type", "meows"]
                            },
                            {
                                "type": "object",
                                "title": "Dog",
                                "properties": {
                                    "pet_type": { "type": "string", "title": "Pet Type", "enum": ["dog"] },
                                    "barks": { "type": "number", "title": "Barks" }
                                },
                                "required": ["pet_type", "barks"],
                                "propertyOrdering": ["pet_type", "barks"]
                            }
                        ]
                    },
                    "id": { "title": "Id", "anyOf": [{ "type": "integer" }, { "type": "string" }] }
                },
                "required": ["pet", "id"],
                "propertyOrdering": ["pet", "id"]
            })
        );
    }

    #[test]
    fn gemini_schema_zod_nullable_and_optional() {
        let nullable_address = {
            let mut address = street_city();
            address["nullable"] = json!(true);
            address
        };
        assert_eq!(
            convert(ZOD3_NULLABLE_OPTIONAL),
            json!({
                "type": "object",
                "properties": {
                    "name": { "type": "string", "description": "Name" },
                    "nick": { "type": "string", "nullable": true },
                    "age": { "type": "integer" },
                    "note": { "type": "string", "nullable": true },
                    "color": { "type": "string", "enum": ["red", "green"], "nullable": true },
                    "address": nullable_address
                },
                "required": ["name", "nick", "color", "address"],
                "propertyOrdering": ["name", "nick", "age", "note", "color", "address"]
            })
        );
        // The openAi target makes optional fields required and nullable.
        let openai = convert(ZOD3_OPENAI_TARGET);
        assert_eq!(
            openai["properties"]["age"],
            json!({ "type": "integer", "nullable": true })
        );
        assert_eq!(
            openai["required"],
            json!(["name", "nick", "age", "note", "color", "address"])
        );
        assert_eq!(
            convert(ZOD4_NULLABLE_OPTIONAL),
            json!({
                "type": "object",
                "properties": {
                    "name": { "type": "string", "description": "Name" },
                    "nick": { "type": "string", "nullable": true },
                    "age": {
                        "type": "integer", "minimum": -9007199254740991_i64, "maximum": 9007199254740991_i64
                    },
                    "color": { "type": "string", "enum": ["red", "green"], "nullable": true },
                    "address": nullable_address
                },
                "required": ["name", "nick", "color", "address"],
                "propertyOrdering": ["name", "nick", "age", "color", "address"]
            })
        );
    }

    #[test]
    fn gemini_schema_zod_discriminated_unions() {
        let expected = json!({
            "type": "object",
            "properties": {
                "event": {
                    "anyOf": [
                        {
                            "type": "object",
                            "properties": {
                                "kind": { "type": "string", "enum": ["click"] },
                                "x": { "type": "number" },
                                "y": { "type": "number" }
                            },
                            "required": ["kind", "x", "y"],
                            "propertyOrdering": ["kind", "x", "y"]
                        },
                        {
                            "type": "object",
                            "properties": {
                                "kind": { "type": "string", "enum": ["key"] },
                                "key": { "type": "string" }
                            },
                            "required": ["kind", "key"],
                            "propertyOrdering": ["kind", "key"]
                        }
                    ]
                }
            },
            "required": ["event"]
        });
        assert_eq!(convert(ZOD3_DISCRIMINATED), expected);
        // zod 4 writes `oneOf` (and no `y`).
        let mut expected = expected;
        let click = &mut expected["properties"]["event"]["anyOf"][0];
        click["properties"].as_object_mut().unwrap().remove("y");
        click["required"] = json!(["kind", "x"]);
        click["propertyOrdering"] = json!(["kind", "x"]);
        assert_eq!(convert(ZOD4_DISCRIMINATED), expected);
    }

    #[test]
    fn gemini_schema_reused_schemas_by_pointer_and_defs() {
        let expected = json!({
            "type": "object",
            "properties": { "billing": street_city(), "shipping": street_city() },
            "required": ["billing", "shipping"],
            "propertyOrdering": ["billing", "shipping"]
        });
        // zod-to-json-schema: `{"$ref":"#/properties/billing"}`; zod 4 repeats the schema.
        assert_eq!(convert(ZOD3_REUSED), expected);
        assert_eq!(convert(ZOD4_REUSED), expected);
        let mut address = street_city();
        address["description"] = json!("Postal address");
        assert_eq!(
            convert(ZOD4_REGISTRY),
            json!({
                "type": "object",
                "properties": {
                    "a": address,
                    "b": address,
                    "tuple": {
                        "type": "array",
                        "items": { "anyOf": [{ "type": "string" }, { "type": "number" }] },
                        "minItems": 2,
                        "maxItems": 2
                    }
                },
                "required": ["a", "tuple"],
                "propertyOrdering": ["a", "b", "tuple"]
            })
        );
    }

    #[test]
    fn gemini_schema_zod_formats_type_lists_and_records() {
        assert_eq!(
            convert(ZOD3_MISC),
            json!({
                "type": "object",
                "properties": {
                    "email": { "type": "string", "description": "Format: email" },
                    "id": { "type": "string", "description": "Format: uuid" },
                    "when": { "type": "string", "format": "date-time" },
                    "tags": {
                        "type": "array", "items": { "type": "string" }, "minItems": 1, "maxItems": 5
                    },
                    "count": { "type": "integer", "minimum": 1 },
                    "mixed": { "anyOf": [{ "type": "string" }, { "type": "number" }] },
                    "lit": { "type": "number", "minimum": 3, "maximum": 3 },
                    "rec": { "type": "object" }
                },
                "required": ["email", "id", "when", "tags", "count", "mixed", "lit", "rec"],
                "propertyOrdering": ["email", "id", "when", "tags", "count", "mixed", "lit", "rec"]
            })
        );
        let zod4 = convert(ZOD4_MISC);
        assert_eq!(zod4["properties"]["email"]["description"], "Format: email");
        assert!(zod4["properties"]["email"]["pattern"].is_string());
        assert_eq!(zod4["properties"]["when"]["format"], "date-time");
        assert_eq!(
            zod4["properties"]["count"],
            json!({ "type": "integer", "minimum": 1, "maximum": 9007199254740991_i64 })
        );
    }

    #[test]
    fn gemini_schema_converting_twice_changes_nothing() {
        for raw in [
            PYDANTIC_PERSON,
            PYDANTIC_OPTIONALS,
            PYDANTIC_ORDER,
            PYDANTIC_ENUMS,
            PYDANTIC_CONSTS,
            PYDANTIC_STRICT,
            PYDANTIC_OWNER,
            ZOD3_NULLABLE_OPTIONAL,
            ZOD3_DISCRIMINATED,
            ZOD3_REUSED,
            ZOD3_MISC,
            ZOD3_OPENAI_TARGET,
            ZOD4_NULLABLE_OPTIONAL,
            ZOD4_DISCRIMINATED,
            ZOD4_REUSED,
            ZOD4_REGISTRY,
            ZOD4_MISC,
        ] {
            let once = convert(raw);
            assert_eq!(gemini_schema(&once, "p").unwrap(), once, "{raw}");
            assert!(!once.to_string().contains("additionalProperties"), "{raw}");
            assert!(!once.to_string().contains("$ref"), "{raw}");
        }
    }

    fn check(cases: &[(Value, Value)]) {
        for (input, expected) in cases {
            assert_eq!(&gemini_schema(input, "p").unwrap(), expected, "{input}");
        }
    }

    #[test]
    fn gemini_schema_type_lists() {
        check(&[
            (
                json!({ "type": ["string", "null"], "maxLength": 3 }),
                json!({ "type": "string", "maxLength": 3, "nullable": true }),
            ),
            (
                json!({ "type": ["null", "object"], "properties": { "a": { "type": "string" } } }),
                json!({ "type": "object", "properties": { "a": { "type": "string" } }, "nullable": true }),
            ),
            (
                // Each alternative keeps the keywords of its type; annotations stay on top.
                json!({
                    "type": ["string", "integer", "null"],
                    "description": "An id",
                    "minLength": 1,
                    "minimum": 0
                }),
                json!({
                    "description": "An id",
                    "anyOf": [{ "type": "string", "minLength": 1 }, { "type": "integer", "minimum": 0 }],
                    "nullable": true
                }),
            ),
            (json!({ "type": "null" }), json!({ "type": "null" })),
            (json!({ "type": ["null"] }), json!({ "type": "null" })),
            (json!({ "type": "STRING" }), json!({ "type": "string" })),
            (
                json!({ "type": ["string", "string"] }),
                json!({ "type": "string" }),
            ),
        ]);
    }

    #[test]
    fn gemini_schema_unions() {
        check(&[
            // Several alternatives and null: anyOf + nullable.
            (
                json!({ "anyOf": [{ "type": "string" }, { "type": "integer" }, { "type": "null" }] }),
                json!({ "anyOf": [{ "type": "string" }, { "type": "integer" }], "nullable": true }),
            ),
            // A nested union is flattened, repeats are dropped.
            (
                json!({ "oneOf": [
                    { "anyOf": [{ "type": "string" }, { "type": "null" }] },
                    { "type": "integer" },
                    { "type": "string" }
                ] }),
                json!({ "anyOf": [{ "type": "string" }, { "type": "integer" }], "nullable": true }),
            ),
            // Constraints beside the union apply to every alternative.
            (
                json!({
                    "type": "object",
                    "description": "Shape",
                    "required": ["kind"],
                    "anyOf": [
                        { "properties": { "kind": { "const": "a" } } },
                        { "properties": { "kind": { "const": "b" }, "b": { "type": "number" } } }
                    ]
                }),
                json!({
                    "description": "Shape",
                    "anyOf": [
                        {
                            "type": "object",
                            "properties": { "kind": { "type": "string", "enum": ["a"] } },
                            "required": ["kind"]
                        },
                        {
                            "type": "object",
                            "properties": {
                                "kind": { "type": "string", "enum": ["b"] },
                                "b": { "type": "number" }
                            },
                            "required": ["kind"],
                            "propertyOrdering": ["kind", "b"]
                        }
                    ]
                }),
            ),
            // Only null.
            (
                json!({ "anyOf": [{ "type": "null" }] }),
                json!({ "type": "null" }),
            ),
        ]);
    }

    #[test]
    fn gemini_schema_enums_and_consts() {
        check(&[
            (
                json!({ "enum": ["a", "b", null] }),
                json!({ "type": "string", "enum": ["a", "b"], "nullable": true }),
            ),
            (
                json!({ "const": "x" }),
                json!({ "type": "string", "enum": ["x"] }),
            ),
            (json!({ "const": null }), json!({ "type": "null" })),
            (
                json!({ "type": "number", "enum": [1.5, 2.5], "description": "Ratio" }),
                json!({
                    "type": "number",
                    "minimum": 1.5,
                    "maximum": 2.5,
                    "description": "Ratio (allowed values: 1.5, 2.5)"
                }),
            ),
            (
                // Values of several kinds: one alternative per kind.
                json!({ "enum": ["auto", 0, 1, false], "title": "Mode" }),
                json!({
                    "title": "Mode",
                    "anyOf": [
                        { "type": "string", "enum": ["auto"] },
                        {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": 1,
                            "description": "Allowed values: 0, 1"
                        },
                        { "type": "boolean", "description": "Allowed values: false" }
                    ]
                }),
            ),
            // Both booleans say nothing; object values cannot be expressed.
            (
                json!({ "type": "boolean", "enum": [true, false] }),
                json!({ "type": "boolean" }),
            ),
            (
                json!({ "type": "object", "const": { "a": 1 } }),
                json!({ "type": "object" }),
            ),
            // Gemini-style string enums pass.
            (
                json!({ "type": "STRING", "format": "enum", "enum": ["EAST", "WEST"] }),
                json!({ "type": "string", "format": "enum", "enum": ["EAST", "WEST"] }),
            ),
        ]);
    }

    #[test]
    fn gemini_schema_formats_and_bounds() {
        check(&[
            (
                json!({ "type": "integer", "format": "int64", "exclusiveMaximum": 10 }),
                json!({ "type": "integer", "format": "int64", "maximum": 9 }),
            ),
            (
                json!({ "type": "number", "format": "int32", "minimum": 0, "exclusiveMinimum": 2 }),
                json!({ "type": "number", "minimum": 2, "description": "Format: int32" }),
            ),
            (
                // Draft 4 / OpenAPI 3.0 boolean exclusive bounds.
                json!({ "type": "integer", "minimum": 0, "exclusiveMinimum": true }),
                json!({ "type": "integer", "minimum": 1 }),
            ),
            (
                json!({ "type": "string", "format": "uri", "description": "Homepage" }),
                json!({ "type": "string", "description": "Homepage (format: uri)" }),
            ),
            (
                json!({ "type": "string", "examples": ["a", "b"], "minLength": -1, "maxLength": 2.0 }),
                json!({ "type": "string", "example": "a", "maxLength": 2 }),
            ),
            (
                json!({
                    "type": "array",
                    "items": { "type": "integer", "multipleOf": 3 },
                    "uniqueItems": true,
                    "contains": { "type": "integer" }
                }),
                json!({ "type": "array", "items": { "type": "integer" } }),
            ),
        ]);
    }

    #[test]
    fn gemini_schema_objects() {
        check(&[
            // Keys Gemini rejects go; an object without properties stays a bare object.
            (
                json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "$id": "x",
                    "$comment": "c",
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {},
                    "required": ["ghost"],
                    "strict": true,
                    "patternProperties": { "^x": { "type": "string" } },
                    "unevaluatedProperties": false,
                    "dependentRequired": { "a": ["b"] },
                    "if": {}, "then": {}, "else": {}, "not": {},
                    "readOnly": true, "writeOnly": true, "deprecated": true
                }),
                json!({ "type": "object" }),
            ),
            (json!({ "type": "object" }), json!({ "type": "object" })),
            // Property names are names, never keywords; unknown required names go.
            (
                json!({
                    "properties": {
                        "type": { "type": "string" },
                        "$ref": { "type": "integer" },
                        "properties": { "type": "boolean" }
                    },
                    "required": ["type", "$ref", "missing", "type"]
                }),
                json!({
                    "type": "object",
                    "properties": {
                        "type": { "type": "string" },
                        "$ref": { "type": "integer" },
                        "properties": { "type": "boolean" }
                    },
                    "required": ["type", "$ref"],
                    "propertyOrdering": ["type", "$ref", "properties"]
                }),
            ),
            // One property: no ordering needed. A given ordering is kept and completed.
            (
                json!({ "type": "object", "properties": { "a": { "type": "string" } } }),
                json!({ "type": "object", "properties": { "a": { "type": "string" } } }),
            ),
            (
                json!({
                    "type": "object",
                    "properties": { "a": {}, "b": {}, "c": {} },
                    "propertyOrdering": ["c", "zz", "a"]
                }),
                json!({
                    "type": "object",
                    "properties": { "a": {}, "b": {}, "c": {} },
                    "propertyOrdering": ["c", "a", "b"]
                }),
            ),
            // Keywords of another type go (Gemini: "only allowed for OBJECT type").
            (
                json!({ "type": "string", "properties": { "a": {} }, "required": ["a"], "items": {} }),
                json!({ "type": "string" }),
            ),
        ]);
    }

    #[test]
    fn gemini_schema_all_of() {
        check(&[
            // One member: merged in, the keys beside `allOf` win.
            (
                json!({
                    "$defs": { "A": { "type": "object", "title": "A", "properties": { "x": { "type": "string" } } } },
                    "allOf": [{ "$ref": "#/$defs/A" }],
                    "title": "Field"
                }),
                json!({ "type": "object", "title": "Field", "properties": { "x": { "type": "string" } } }),
            ),
            // Several objects: properties and required joined, the tighter bound kept.
            (
                json!({ "allOf": [
                    { "type": "object", "properties": { "a": { "type": "string" } }, "required": ["a"], "maxProperties": 5 },
                    { "type": "object", "properties": { "b": { "type": "integer" } }, "required": ["b"], "maxProperties": 3 }
                ] }),
                json!({
                    "type": "object",
                    "properties": { "a": { "type": "string" }, "b": { "type": "integer" } },
                    "required": ["a", "b"],
                    "maxProperties": 3,
                    "propertyOrdering": ["a", "b"]
                }),
            ),
            // Null only when every member allows it.
            (
                json!({ "allOf": [{ "type": ["string", "null"] }, { "type": "string", "minLength": 2 }] }),
                json!({ "type": "string", "minLength": 2 }),
            ),
        ]);
    }

    #[test]
    fn gemini_schema_refs() {
        check(&[
            // Keys beside a `$ref` win over the referenced schema's.
            (
                json!({
                    "definitions": { "Id": { "type": "string", "description": "An id", "title": "Id" } },
                    "type": "object",
                    "properties": {
                        "a": { "$ref": "#/definitions/Id", "description": "The first" },
                        "b": { "$ref": "#/definitions/Id", "default": "x" }
                    }
                }),
                json!({
                    "type": "object",
                    "properties": {
                        "a": { "type": "string", "title": "Id", "description": "The first" },
                        "b": { "type": "string", "title": "Id", "description": "An id", "default": "x" }
                    },
                    "propertyOrdering": ["a", "b"]
                }),
            ),
            // JSON pointer escapes (`~1` is `/`) and percent-encoding.
            (
                json!({
                    "$defs": { "a/b": { "type": "integer" }, "c d": { "type": "boolean" } },
                    "type": "array",
                    "prefixItems": [{ "$ref": "#/$defs/a~1b" }, { "$ref": "#/%24defs/c%20d" }]
                }),
                json!({
                    "type": "array",
                    "items": { "anyOf": [{ "type": "integer" }, { "type": "boolean" }] }
                }),
            ),
            // A reference to a reference.
            (
                json!({
                    "$defs": { "A": { "$ref": "#/$defs/B" }, "B": { "type": "string" } },
                    "$ref": "#/$defs/A"
                }),
                json!({ "type": "string" }),
            ),
        ]);
        for (schema, expected) in [
            (
                json!({ "$ref": "https://example.com/schema.json" }),
                "`$ref` `https://example.com/schema.json` is not a local reference; only references into the same schema (`#/$defs/Name`) are supported",
            ),
            (
                json!({ "$ref": "#/$defs/Missing" }),
                "`$ref` `#/$defs/Missing` points to nothing in the schema",
            ),
            (
                json!({ "$ref": "#node" }),
                "`$ref` `#node` names an anchor; only JSON pointers such as `#/$defs/Name` are supported",
            ),
            (
                json!({
                    "$defs": { "A": { "$ref": "#/$defs/B" }, "B": { "anyOf": [{ "$ref": "#/$defs/A" }] } },
                    "$ref": "#/$defs/A"
                }),
                "the schema is recursive through `$defs/A`; Gemini needs a schema without cycles",
            ),
            (json!({ "$ref": 3 }), "`$ref` must be a string"),
        ] {
            let (status, message, param) = error_of(&schema);
            assert_eq!((status, message.as_str()), (400, expected), "{schema}");
            assert_eq!(param, "tools[2].function.parameters");
        }
    }

    #[test]
    fn gemini_schema_invalid_schemas() {
        for (schema, expected) in [
            (json!("string"), "a schema must be a JSON object, not a string"),
            (
                json!({ "type": "object", "properties": { "a": false } }),
                "the schema `false` (no value is valid) cannot be sent to Gemini",
            ),
            (
                json!({ "type": "date" }),
                "unsupported schema type `date`; Gemini knows string, number, integer, boolean, array, object and null",
            ),
            (json!({ "type": 3 }), "`type` must be a string or an array of strings"),
            (json!({ "enum": "a" }), "`enum` must be an array"),
            (json!({ "anyOf": {} }), "`anyOf` must be an array of schemas"),
            (json!({ "allOf": {} }), "`allOf` must be an array of schemas"),
            (json!({ "type": "object", "properties": [] }), "`properties` must be an object"),
        ] {
            let (status, message, _) = error_of(&schema);
            assert_eq!((status, message.as_str()), (400, expected), "{schema}");
        }
        // `true` is any value.
        assert_eq!(
            gemini_schema(&json!({ "type": "array", "items": true }), "p").unwrap(),
            json!({ "type": "array", "items": {} })
        );
    }

    #[test]
    fn gemini_schema_limits() {
        // Deep nesting is refused, not a stack overflow.
        let mut deep = json!({ "type": "string" });
        for _ in 0..(MAX_DEPTH + 1) {
            deep = json!({ "type": "array", "items": deep });
        }
        let (status, message, _) = error_of(&deep);
        assert_eq!(status, 400);
        assert_eq!(message, "the schema is nested more than 64 levels deep");
        let mut fits = json!({ "type": "string" });
        for _ in 0..MAX_DEPTH {
            fits = json!({ "type": "array", "items": fits });
        }
        assert!(gemini_schema(&fits, "p").is_ok());

        // References that double at each level would inline to 2^20 nodes.
        let mut defs = serde_json::Map::new();
        defs.insert("D0".into(), json!({ "type": "string" }));
        for i in 1..=20 {
            let below = format!("#/$defs/D{}", i - 1);
            defs.insert(
                format!("D{i}"),
                json!({ "type": "object", "properties": {
                    "l": { "$ref": below }, "r": { "$ref": below }
                } }),
            );
        }
        let bomb = json!({ "$defs": defs, "$ref": "#/$defs/D20" });
        let (status, message, _) = error_of(&bomb);
        assert_eq!(status, 400);
        assert_eq!(
            message,
            "the schema is too large for Gemini once its `$ref`s are inlined (more than 20000 nodes)"
        );
        // Copied values count too.
        let big_default = json!({ "type": "array", "default": vec![0; MAX_NODES + 1] });
        assert_eq!(error_of(&big_default).0, 400);
    }

    #[test]
    fn constraints_copied_into_many_branches_count_against_the_limit() {
        let properties: Map<String, Value> =
            (0..2000).map(|i| (format!("p{i}"), json!({}))).collect();
        let branches: Vec<Value> = (0..2000)
            .map(|i| json!({"title": format!("a{i}")}))
            .collect();
        let schema = json!({"type": "object", "properties": properties, "anyOf": branches});
        // Refused (before the 4 million copies are made), not converted.
        let error = gemini_schema(&schema, "tools[0].function.parameters").unwrap_err();
        assert_eq!(error.status(), 400);
        assert!(error.to_string().contains("too large"), "{error}");
    }

    #[test]
    fn thousands_of_distinct_alternatives_are_kept_and_equal_ones_merged() {
        let branches: Vec<Value> = (0..5000)
            .map(|i| json!({"type": "string", "title": format!("a{i}")}))
            .collect();
        let converted = gemini_schema(&json!({"anyOf": branches}), "p").unwrap();
        assert_eq!(converted["anyOf"].as_array().unwrap().len(), 5000);
        // Equal alternatives still collapse into one.
        let same = gemini_schema(
            &json!({"anyOf": [{"type": "string"}, {"type": "string"}, {"type": "integer"}]}),
            "p",
        )
        .unwrap();
        assert_eq!(same["anyOf"].as_array().unwrap().len(), 2);
    }
}
