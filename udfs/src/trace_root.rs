//! `trace_root(span_id, parent_span_id, duration_ns, service_name, span_name)`, used with
//! `GROUP BY trace_id`: the trace's root span (service and name) and whether the trace has
//! orphans, by the rules of the `traces` view (SPEC.md):
//!
//! - the root is the span without a parent id when there is exactly one; otherwise (several,
//!   or none) the longest span whose parent is not in the trace, ties broken by the smaller
//!   `span_id`;
//! - `has_orphans`: some span's parent id names no span of the trace.
//!
//! One pass per trace, with no self-join: the view used to find orphans with a join of every
//! span against every (trace_id, span_id) and pick roots with ordered `first_value`s, which
//! took 20 s for 10M spans; this takes about a second.
//!
//! Span ids are compared as 64-bit keys: the id's value for the 16-lowercase-hex ids of OTLP,
//! a hash otherwise. For hex ids this is exact (their numeric order is their string order);
//! for other ids, a hash collision could hide an orphan and ties are broken in hash order.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Int64Array, ListArray, StringArray, StringBuilder,
    StructArray, UInt64Array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Int64Type, UInt64Type};
use datafusion::common::{HashMap, Result, exec_err, not_impl_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, DocumentationBuilder, EmitTo, GroupsAccumulator, Signature,
    Volatility, aggregate_doc_sections::DOC_SECTION_GENERAL,
};

/// The `trace_root` aggregate function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TraceRootFunc {
    signature: Signature,
}

impl Default for TraceRootFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl TraceRootFunc {
    /// Creates the function.
    pub fn new() -> Self {
        Self { signature: Signature::any(5, Volatility::Immutable) }
    }
}

fn result_fields() -> Fields {
    Fields::from(vec![
        Field::new("service_name", DataType::Utf8, true),
        Field::new("span_name", DataType::Utf8, true),
        Field::new("has_orphans", DataType::Boolean, false),
    ])
}

fn entry_fields() -> Fields {
    Fields::from(vec![
        Field::new("span_key", DataType::UInt64, false),
        Field::new("parent_key", DataType::UInt64, true),
        Field::new("duration_ns", DataType::Int64, false),
        Field::new("service_name", DataType::Utf8, false),
        Field::new("span_name", DataType::Utf8, false),
    ])
}

fn entry_list_item() -> FieldRef {
    Arc::new(Field::new_list_field(DataType::Struct(entry_fields()), true))
}

impl AggregateUDFImpl for TraceRootFunc {
    fn name(&self) -> &str {
        "trace_root"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if arg_types.len() != 5 {
            return plan_err!("trace_root(span_id, parent_span_id, duration_ns, service_name, span_name) takes 5 arguments");
        }
        Ok(DataType::Struct(result_fields()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format!("{}[spans]", args.name), DataType::List(entry_list_item()), true))])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        not_impl_err!("trace_root is only computed per group (GROUP BY trace_id)")
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.is_distinct
    }

    fn create_groups_accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(TraceRootAccumulator::default()))
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOC: std::sync::OnceLock<Documentation> = std::sync::OnceLock::new();
        Some(DOC.get_or_init(|| {
            DocumentationBuilder::new_with_details(
                DOC_SECTION_GENERAL,
                "Per trace (GROUP BY trace_id): the root span's service_name and span_name and whether the trace has orphans, as the `traces` view defines them.",
                "trace_root(span_id, parent_span_id, duration_ns, service_name, span_name)['service_name']",
            )
            .build()
        }))
    }
}

/// 64-bit key of a span id (see the module docs).
fn span_key(id: &str) -> u64 {
    if id.len() == 16 {
        let mut v = 0u64;
        let mut hex = true;
        for b in id.bytes() {
            let digit = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => {
                    hex = false;
                    break;
                }
            };
            v = (v << 4) | u64::from(digit);
        }
        if hex {
            return v;
        }
    }
    let mut h = DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    span: u64,
    parent: Option<u64>,
    duration: i64,
    service: u32,
    name: u32,
}

/// Strings seen by the accumulator, stored once.
#[derive(Debug, Default)]
struct Interner {
    ids: HashMap<String, u32>,
    strings: Vec<String>,
    bytes: usize,
}

/// The id of the last string looked up in one column: rows come sorted by service and
/// operation, so most lookups repeat the previous one and skip the hash.
#[derive(Debug, Default)]
struct LastId(Option<u32>);

impl Interner {
    fn id_cached(&mut self, s: &str, last: &mut LastId) -> u32 {
        if let Some(id) = last.0.filter(|&id| self.strings[id as usize] == s) {
            return id;
        }
        let id = self.id(s);
        last.0 = Some(id);
        id
    }

    fn id(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = self.strings.len() as u32;
        self.ids.insert(s.to_owned(), id);
        self.strings.push(s.to_owned());
        self.bytes += 2 * s.len() + 48;
        id
    }
}

/// Entries are appended to one vector in arrival order, tagged with their group, and bucketed
/// by group only when emitted: appending to a vector per group (as DataFusion's `median`
/// does) costs a cache miss per row with 10M spans spread over 200k+ traces.
#[derive(Debug, Default)]
struct TraceRootAccumulator {
    entries: Vec<(u32, Entry)>,
    num_groups: usize,
    strings: Interner,
}

/// Emitted groups: group `g`'s entries are `entries[offsets[g]..offsets[g + 1]]`.
struct Bucketed {
    offsets: Vec<usize>,
    entries: Vec<Entry>,
}

impl Bucketed {
    fn groups(&self) -> impl Iterator<Item = &[Entry]> {
        self.offsets.windows(2).map(|w| &self.entries[w[0]..w[1]])
    }
}

impl TraceRootAccumulator {
    fn push(&mut self, group: usize, entry: Entry) {
        self.entries.push((group as u32, entry));
    }

    fn take(&mut self, emit_to: EmitTo) -> Bucketed {
        let n = match emit_to {
            EmitTo::All => self.num_groups,
            EmitTo::First(k) => k.min(self.num_groups),
        };
        let taken: Vec<(u32, Entry)> = if n == self.num_groups {
            std::mem::take(&mut self.entries)
        } else {
            let (taken, rest): (Vec<_>, Vec<_>) = self.entries.drain(..).partition(|(g, _)| (*g as usize) < n);
            self.entries = rest.into_iter().map(|(g, e)| (g - n as u32, e)).collect();
            taken
        };
        self.num_groups -= n;
        // Counting sort by group.
        let mut offsets = vec![0usize; n + 1];
        for (g, _) in &taken {
            offsets[*g as usize + 1] += 1;
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        let mut next = offsets.clone();
        let mut entries = vec![Entry { span: 0, parent: None, duration: 0, service: 0, name: 0 }; taken.len()];
        for (g, e) in taken {
            let slot = &mut next[g as usize];
            entries[*slot] = e;
            *slot += 1;
        }
        Bucketed { offsets, entries }
    }
}

/// The five arguments as typed arrays.
struct Inputs {
    span_id: ArrayRef,
    parent: ArrayRef,
    duration: ArrayRef,
    service: ArrayRef,
    name: ArrayRef,
}

impl Inputs {
    fn new(values: &[ArrayRef]) -> Result<Self> {
        let [span_id, parent, duration, service, name] = values else {
            return exec_err!("trace_root: expected 5 arguments, got {}", values.len());
        };
        let utf8 = |a: &ArrayRef| cast(a, &DataType::Utf8);
        Ok(Self {
            span_id: utf8(span_id)?,
            parent: utf8(parent)?,
            duration: cast(duration, &DataType::Int64)?,
            service: utf8(service)?,
            name: utf8(name)?,
        })
    }
}

impl GroupsAccumulator for TraceRootAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let inputs = Inputs::new(values)?;
        let (ids, parents) = (inputs.span_id.as_string::<i32>(), inputs.parent.as_string::<i32>());
        let durations = inputs.duration.as_primitive::<Int64Type>();
        let (services, names) = (inputs.service.as_string::<i32>(), inputs.name.as_string::<i32>());
        if group_indices.len() != ids.len() {
            return exec_err!("trace_root: {} group indices for {} rows", group_indices.len(), ids.len());
        }
        self.num_groups = self.num_groups.max(total_num_groups);
        self.entries.reserve(ids.len());
        let (mut last_service, mut last_name) = (LastId::default(), LastId::default());
        for (row, &group) in group_indices.iter().enumerate() {
            if opt_filter.is_some_and(|f| !(f.is_valid(row) && f.value(row))) || ids.is_null(row) {
                continue;
            }
            let entry = Entry {
                span: span_key(ids.value(row)),
                parent: parents.is_valid(row).then(|| span_key(parents.value(row))),
                duration: if durations.is_valid(row) { durations.value(row) } else { 0 },
                service: self.strings.id_cached(if services.is_valid(row) { services.value(row) } else { "" }, &mut last_service),
                name: self.strings.id_cached(if names.is_valid(row) { names.value(row) } else { "" }, &mut last_name),
            };
            self.push(group, entry);
        }
        Ok(())
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        let Some(lists) = values.first() else { return exec_err!("trace_root: missing state") };
        let lists = lists.as_list::<i32>();
        if group_indices.len() != lists.len() {
            return exec_err!("trace_root: {} group indices for {} states", group_indices.len(), lists.len());
        }
        self.num_groups = self.num_groups.max(total_num_groups);
        let entries = lists.values().as_struct();
        let spans = entries.column(0).as_primitive::<UInt64Type>();
        let parents = entries.column(1).as_primitive::<UInt64Type>();
        let durations = entries.column(2).as_primitive::<Int64Type>();
        let (services, names) = (entries.column(3).as_string::<i32>(), entries.column(4).as_string::<i32>());
        let offsets = lists.value_offsets();
        let (mut last_service, mut last_name) = (LastId::default(), LastId::default());
        for (row, &group) in group_indices.iter().enumerate() {
            if lists.is_null(row) {
                continue;
            }
            for i in offsets[row] as usize..offsets[row + 1] as usize {
                let entry = Entry {
                    span: spans.value(i),
                    parent: parents.is_valid(i).then(|| parents.value(i)),
                    duration: durations.value(i),
                    service: self.strings.id_cached(services.value(i), &mut last_service),
                    name: self.strings.id_cached(names.value(i), &mut last_name),
                };
                self.push(group, entry);
            }
        }
        Ok(())
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let taken = self.take(emit_to);
        Ok(vec![Arc::new(entries_to_list(&taken, &self.strings.strings)?)])
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let taken = self.take(emit_to);
        let groups = taken.offsets.len() - 1;
        let mut service = StringBuilder::with_capacity(groups, 0);
        let mut name = StringBuilder::with_capacity(groups, 0);
        let mut orphans = BooleanBuilder::with_capacity(groups);
        for entries in taken.groups() {
            let (root, has_orphans) = root_of(entries);
            let strings = &self.strings.strings;
            service.append_option(root.map(|e| strings[e.service as usize].as_str()));
            name.append_option(root.map(|e| strings[e.name as usize].as_str()));
            orphans.append_value(has_orphans);
        }
        let columns: Vec<ArrayRef> = vec![Arc::new(service.finish()), Arc::new(name.finish()), Arc::new(orphans.finish())];
        Ok(Arc::new(StructArray::try_new(result_fields(), columns, None)?))
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        // Each row its own group: a one-entry list (strings interned in a local table).
        let mut local = TraceRootAccumulator::default();
        let rows = values.first().map_or(0, |v| v.len());
        let groups: Vec<usize> = (0..rows).collect();
        local.update_batch(values, &groups, opt_filter, rows)?;
        let taken = local.take(EmitTo::All);
        Ok(vec![Arc::new(entries_to_list(&taken, &local.strings.strings)?)])
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.entries.capacity() * std::mem::size_of::<(u32, Entry)>() + self.strings.bytes
    }
}

fn entries_to_list(groups: &Bucketed, strings: &[String]) -> Result<ListArray> {
    let all = groups.entries.iter();
    let spans: UInt64Array = all.clone().map(|e| e.span).collect();
    let parents: UInt64Array = all.clone().map(|e| e.parent).collect();
    let durations: Int64Array = all.clone().map(|e| e.duration).collect();
    let services: StringArray = all.clone().map(|e| Some(strings[e.service as usize].as_str())).collect();
    let names: StringArray = all.map(|e| Some(strings[e.name as usize].as_str())).collect();
    let columns: Vec<ArrayRef> = vec![Arc::new(spans), Arc::new(parents), Arc::new(durations), Arc::new(services), Arc::new(names)];
    let entries = StructArray::try_new(entry_fields(), columns, None)?;
    let offsets = OffsetBuffer::from_lengths(groups.offsets.windows(2).map(|w| w[1] - w[0]));
    Ok(ListArray::try_new(entry_list_item(), offsets, Arc::new(entries), None)?)
}

/// The root entry (if any) and whether some entry is an orphan.
fn root_of(entries: &[Entry]) -> (Option<&Entry>, bool) {
    let mut keys: Vec<u64> = entries.iter().map(|e| e.span).collect();
    keys.sort_unstable();
    let present = |k: u64| keys.binary_search(&k).is_ok();
    let is_orphan = |e: &Entry| e.parent.is_some_and(|p| !present(p));
    let has_orphans = entries.iter().any(is_orphan);
    let mut without_parent = entries.iter().filter(|e| e.parent.is_none());
    if let (Some(only), None) = (without_parent.next(), without_parent.next()) {
        return (Some(only), has_orphans);
    }
    // Longest, then smallest span id.
    let root = entries
        .iter()
        .filter(|e| e.parent.is_none() || is_orphan(e))
        .min_by(|a, b| b.duration.cmp(&a.duration).then(a.span.cmp(&b.span)));
    (root, has_orphans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(span: u64, parent: Option<u64>, duration: i64, service: u32) -> Entry {
        Entry { span, parent, duration, service, name: 0 }
    }

    #[test]
    fn roots_and_orphans_by_the_view_rules() {
        // One parentless span: it is the root even if an orphan is longer.
        let one = [entry(1, None, 5, 0), entry(2, Some(1), 3, 1), entry(3, Some(99), 50, 2)];
        let (root, orphans) = root_of(&one);
        assert_eq!((root.map(|e| e.span), orphans), (Some(1), true));
        // Two parentless spans: the longer; equal lengths: the smaller id.
        let two = [entry(7, None, 5, 0), entry(4, None, 9, 1), entry(5, Some(4), 1, 2)];
        assert_eq!(root_of(&two).0.map(|e| e.span), Some(4));
        let tie = [entry(7, None, 9, 0), entry(4, None, 9, 1)];
        assert_eq!(root_of(&tie).0.map(|e| e.span), Some(4));
        // Only orphans: the longest orphan.
        let orphans_only = [entry(1, Some(100), 3, 0), entry(2, Some(101), 8, 1), entry(3, Some(2), 20, 2)];
        let (root, orphans) = root_of(&orphans_only);
        assert_eq!((root.map(|e| e.span), orphans), (Some(2), true));
        // A cycle (every parent present): no root, no orphans.
        let cycle = [entry(1, Some(2), 3, 0), entry(2, Some(1), 8, 1)];
        assert_eq!((root_of(&cycle).0.is_none(), root_of(&cycle).1), (true, false));
    }

    #[test]
    fn hex_ids_keep_their_order() {
        assert!(span_key("00000000000000ff") < span_key("0000000000000100"));
        assert_eq!(span_key("b7ad6b7169203331"), 0xb7ad6b7169203331);
        assert_ne!(span_key("not-hex"), span_key("also-not-hex"));
    }

    #[test]
    fn state_round_trip_and_groups() {
        let ids: ArrayRef = Arc::new(StringArray::from(vec!["0000000000000001", "0000000000000002", "0000000000000003", "0000000000000004"]));
        let parents: ArrayRef = Arc::new(StringArray::from(vec![None, Some("0000000000000001"), None, Some("00000000000000ff")]));
        let durations: ArrayRef = Arc::new(Int64Array::from(vec![10, 5, 7, 1]));
        let services: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "c", "d"]));
        let names: ArrayRef = Arc::new(StringArray::from(vec!["ra", "rb", "rc", "rd"]));
        let values = [ids, parents, durations, services, names];
        // Rows 0, 1 in group 0 (root a/ra); rows 2, 3 in group 1 (root c/rc, with an orphan).
        let mut partial = TraceRootAccumulator::default();
        partial.update_batch(&values, &[0, 0, 1, 1], None, 2).unwrap();
        let state = partial.state(EmitTo::All).unwrap();
        let mut last = TraceRootAccumulator::default();
        last.merge_batch(&state, &[1, 0], 2).unwrap();
        let out = last.evaluate(EmitTo::All).unwrap();
        let out = out.as_struct();
        let service = out.column(0).as_string::<i32>();
        let orphans = out.column(2).as_boolean();
        assert_eq!((service.value(0), orphans.value(0)), ("c", true));
        assert_eq!((service.value(1), orphans.value(1)), ("a", false));
        // convert_to_state: one-entry lists that merge back to the same answer.
        let rows = TraceRootAccumulator::default().convert_to_state(&values, None).unwrap();
        let mut merged = TraceRootAccumulator::default();
        merged.merge_batch(&rows, &[0, 0, 1, 1], 2).unwrap();
        let again = merged.evaluate(EmitTo::All).unwrap();
        assert_eq!(again.as_struct().column(0).as_string::<i32>().value(0), "a");
        // Emitting the first group renumbers the rest: group 1 becomes group 0.
        let mut acc = TraceRootAccumulator::default();
        acc.update_batch(&values, &[1, 0, 1, 2], None, 3).unwrap();
        let first = acc.evaluate(EmitTo::First(1)).unwrap();
        assert_eq!(first.as_struct().column(1).as_string::<i32>().value(0), "rb", "group 0: only an orphan");
        let rest = acc.evaluate(EmitTo::All).unwrap();
        let names = rest.as_struct().column(1).as_string::<i32>();
        assert_eq!((rest.len(), names.value(0), names.value(1)), (2, "ra", "rd"));
    }
}
