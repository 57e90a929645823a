//! The pure trace algorithms behind `trace_tree`, `critical_path` and `self_time_agg`:
//! building a span tree from rows (robust to orphans, duplicate span ids and cycles), the
//! depth-first order, self times, and the critical path.
//!
//! Nothing here touches Arrow: the SQL functions convert columns to [`SpanNode`]s and back.

use std::collections::HashMap;

/// One span as the algorithms see it (times in Unix nanoseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanNode {
    /// Hex span id (may repeat in bad data).
    pub span_id: String,
    /// Hex parent span id; `None` for a root.
    pub parent_span_id: Option<String>,
    /// Start time.
    pub start: i64,
    /// End time (≥ start in valid data; a shorter end is treated as `start`).
    pub end: i64,
}

impl SpanNode {
    fn end(&self) -> i64 {
        self.end.max(self.start)
    }
}

/// A span tree over `spans` (indices into the input slice).
#[derive(Debug)]
pub struct SpanTree {
    /// `parent[i]`: index of span i's parent, if that parent is present.
    pub parent: Vec<Option<usize>>,
    /// Children of each span, ordered by (start, span_id, input position).
    pub children: Vec<Vec<usize>>,
    /// True for spans whose parent id is set but names no span of the input.
    pub is_orphan: Vec<bool>,
}

impl SpanTree {
    /// Links every span to its parent. With duplicate span ids, a child links to the earliest
    /// (by start, then input position) span carrying its parent id. A span never links to
    /// itself.
    pub fn build(spans: &[SpanNode]) -> Self {
        let n = spans.len();
        let mut first_by_id: HashMap<&str, usize> = HashMap::with_capacity(n);
        for (i, s) in spans.iter().enumerate() {
            first_by_id
                .entry(s.span_id.as_str())
                .and_modify(|j| {
                    if (s.start, i) < (spans[*j].start, *j) {
                        *j = i
                    }
                })
                .or_insert(i);
        }
        let mut parent = vec![None; n];
        let mut is_orphan = vec![false; n];
        let mut children = vec![Vec::new(); n];
        for (i, s) in spans.iter().enumerate() {
            let Some(pid) = s.parent_span_id.as_deref() else { continue };
            match first_by_id.get(pid) {
                Some(&p) if p != i => {
                    parent[i] = Some(p);
                    children[p].push(i);
                }
                Some(_) => {} // its own parent: treated as a root
                None => is_orphan[i] = true,
            }
        }
        for list in &mut children {
            list.sort_by(|&a, &b| order_key(spans, a).cmp(&order_key(spans, b)));
        }
        Self { parent, children, is_orphan }
    }

    /// Spans without a present parent (roots and orphans), in (start, span_id) order.
    pub fn tops(&self, spans: &[SpanNode]) -> Vec<usize> {
        let mut tops: Vec<usize> = (0..spans.len()).filter(|&i| self.parent[i].is_none()).collect();
        tops.sort_by(|&a, &b| order_key(spans, a).cmp(&order_key(spans, b)));
        tops
    }
}

fn order_key(spans: &[SpanNode], i: usize) -> (i64, &str, usize) {
    (spans[i].start, spans[i].span_id.as_str(), i)
}

/// One row of a depth-first walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeRow {
    /// Index of the span in the input.
    pub index: usize,
    /// Depth: 0 for roots, orphans, and spans of a parent cycle.
    pub depth: usize,
    /// Position (in the walk's output) of the row of this span's parent, `None` at depth 0.
    /// Follow it upwards to build the span's path.
    pub parent_row: Option<usize>,
    /// Row of the top (depth 0) span of this span's tree.
    pub top_row: usize,
    /// Number of direct children.
    pub child_count: usize,
}

/// Every span exactly once in depth-first order: tops by (start, span_id), children by
/// (start, span_id). Spans caught in a parent cycle (never reachable from a top) are started
/// at depth 0 from the earliest of them, so nothing is lost and the walk always ends.
pub fn depth_first(spans: &[SpanNode], tree: &SpanTree) -> Vec<TreeRow> {
    let n = spans.len();
    let mut visited = vec![false; n];
    let mut rows = Vec::with_capacity(n);
    let mut starts = tree.tops(spans);
    let mut rest: Vec<usize> = (0..n).collect();
    rest.sort_by(|&a, &b| order_key(spans, a).cmp(&order_key(spans, b)));
    let mut rest = rest.into_iter();
    loop {
        for top in std::mem::take(&mut starts) {
            walk_from(top, tree, &mut visited, &mut rows);
        }
        // Whatever is left sits in a cycle: start again from its earliest span.
        match rest.by_ref().find(|&i| !visited[i]) {
            Some(i) => starts.push(i),
            None => break,
        }
    }
    rows
}

fn walk_from(top: usize, tree: &SpanTree, visited: &mut [bool], rows: &mut Vec<TreeRow>) {
    if visited[top] {
        return;
    }
    // Explicit stack: traces can be 100k spans deep. Entries: (span, depth, parent's row).
    let mut stack: Vec<(usize, usize, Option<usize>)> = vec![(top, 0, None)];
    while let Some((node, depth, parent_row)) = stack.pop() {
        if visited[node] {
            continue;
        }
        visited[node] = true;
        let row = rows.len();
        let top_row = parent_row.map_or(row, |p: usize| rows[p].top_row);
        rows.push(TreeRow { index: node, depth, parent_row, top_row, child_count: tree.children[node].len() });
        for &child in tree.children[node].iter().rev() {
            if !visited[child] {
                stack.push((child, depth + 1, Some(row)));
            }
        }
    }
}

/// Longest path (in spans) that [`path_of`] spells out in full; deeper paths keep the top span
/// and the last `MAX_PATH_SPANS - 1` spans with `…` between, so a 100k-deep chain stays linear.
pub const MAX_PATH_SPANS: usize = 32;

/// The indices of the spans on row `row`'s path, top first (see [`MAX_PATH_SPANS`]); `None`
/// marks the elided middle of a deeper path.
pub fn path_of(rows: &[TreeRow], row: usize) -> Vec<Option<usize>> {
    let mut up = Vec::new();
    let mut current = Some(row);
    while let Some(r) = current {
        if up.len() == MAX_PATH_SPANS - 1 && rows[r].parent_row.is_some() {
            // Too deep: elide the middle, but always show the top span.
            up.push(None);
            up.push(Some(rows[rows[r].top_row].index));
            break;
        }
        up.push(Some(rows[r].index));
        current = rows[r].parent_row;
    }
    up.reverse();
    up
}

/// Self time of every span: its duration minus the union of its children's intervals, each
/// clipped to the span. Always in `[0, duration]`.
pub fn self_times(spans: &[SpanNode], tree: &SpanTree) -> Vec<i64> {
    let mut out = Vec::with_capacity(spans.len());
    let mut intervals: Vec<(i64, i64)> = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        let (start, end) = (span.start, span.end());
        intervals.clear();
        intervals.extend(tree.children[i].iter().filter_map(|&c| {
            let (cs, ce) = (spans[c].start.max(start), spans[c].end().min(end));
            (ce > cs).then_some((cs, ce))
        }));
        intervals.sort_unstable();
        let mut covered = 0i64;
        let mut current: Option<(i64, i64)> = None;
        for &(s, e) in &intervals {
            current = match current {
                Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
                Some((cs, ce)) => {
                    covered += ce - cs;
                    Some((s, e))
                }
                None => Some((s, e)),
            };
        }
        if let Some((cs, ce)) = current {
            covered += ce - cs;
        }
        out.push((end - start) - covered);
    }
    out
}

/// The root the critical path starts from: the only span without a parent id, or else (several
/// of them, or only orphans) the longest span whose parent is absent, ties by earlier start,
/// then span_id. `None` for an empty trace.
pub fn critical_root(spans: &[SpanNode], tree: &SpanTree) -> Option<usize> {
    let null_parent: Vec<usize> = (0..spans.len()).filter(|&i| spans[i].parent_span_id.is_none()).collect();
    if null_parent.len() == 1 {
        return null_parent.first().copied();
    }
    (0..spans.len())
        .filter(|&i| tree.parent[i].is_none())
        .min_by(|&a, &b| {
            let (sa, sb) = (&spans[a], &spans[b]);
            (sb.end() - sb.start)
                .cmp(&(sa.end() - sa.start))
                .then(sa.start.cmp(&sb.start))
                .then(sa.span_id.cmp(&sb.span_id))
                .then(a.cmp(&b))
        })
}

/// One segment of the critical path: `[start, end)` spent in span `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Index of the span in the input.
    pub index: usize,
    /// Segment start.
    pub start: i64,
    /// Segment end.
    pub end: i64,
}

/// The critical path, as SPEC.md defines it (Jaeger / Uber CRISP): children clipped to their
/// parents (a child entirely outside is dropped with its subtree); from the root with
/// `limit = root.end`, repeatedly take the not-yet-used child with the latest end ≤ limit (ties:
/// later start, then span_id), give `[child.end, limit]` to the parent, descend into the child
/// with `limit = child.end`, then continue the parent with `limit = child.start`; when no child
/// fits, `[parent.start, limit]` goes to the parent. Zero-length segments are omitted. The
/// segments, in time order, tile `[root.start, root.end]` exactly.
pub fn critical_path(spans: &[SpanNode], tree: &SpanTree) -> Vec<Segment> {
    let Some(root) = critical_root(spans, tree) else { return Vec::new() };
    // Clipped interval of every span reachable from the root (parents before children).
    let mut clipped: HashMap<usize, (i64, i64)> = HashMap::new();
    clipped.insert(root, (spans[root].start, spans[root].end()));
    let mut order = vec![root];
    let mut k = 0;
    while k < order.len() {
        let node = order[k];
        k += 1;
        let (ps, pe) = clipped[&node];
        for &c in &tree.children[node] {
            let (cs, ce) = (spans[c].start.max(ps), spans[c].end().min(pe));
            let inside = spans[c].start <= pe && spans[c].end() >= ps;
            if inside && !clipped.contains_key(&c) {
                clipped.insert(c, (cs, ce));
                order.push(c);
            }
        }
    }
    // Each span's usable children, by end descending, then start descending, then span_id.
    let sorted_children = |node: usize| -> Vec<usize> {
        let mut kids: Vec<usize> = tree.children[node].iter().copied().filter(|c| clipped.contains_key(c)).collect();
        kids.sort_by(|&a, &b| {
            let ((sa, ea), (sb, eb)) = (clipped[&a], clipped[&b]);
            eb.cmp(&ea).then(sb.cmp(&sa)).then(spans[a].span_id.cmp(&spans[b].span_id)).then(a.cmp(&b))
        });
        kids
    };

    struct Frame {
        node: usize,
        limit: i64,
        kids: Vec<usize>,
        next: usize,
    }
    let mut segments = Vec::new();
    let mut stack = vec![Frame { node: root, limit: clipped[&root].1, kids: sorted_children(root), next: 0 }];
    while let Some(frame) = stack.last_mut() {
        // Children ending after the limit can never fit again: the limit only decreases.
        while frame.next < frame.kids.len() && clipped[&frame.kids[frame.next]].1 > frame.limit {
            frame.next += 1;
        }
        if let Some(&child) = frame.kids.get(frame.next) {
            frame.next += 1;
            let (cs, ce) = clipped[&child];
            if frame.limit > ce {
                segments.push(Segment { index: frame.node, start: ce, end: frame.limit });
            }
            frame.limit = cs;
            stack.push(Frame { node: child, limit: ce, kids: sorted_children(child), next: 0 });
        } else {
            let start = clipped[&frame.node].0;
            if frame.limit > start {
                segments.push(Segment { index: frame.node, start, end: frame.limit });
            }
            stack.pop();
        }
    }
    segments.reverse();
    segments
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(id: &str, parent: Option<&str>, start: i64, end: i64) -> SpanNode {
        SpanNode { span_id: id.into(), parent_span_id: parent.map(Into::into), start, end }
    }

    fn ids(spans: &[SpanNode], rows: &[TreeRow]) -> Vec<(String, usize)> {
        rows.iter().map(|r| (spans[r.index].span_id.clone(), r.depth)).collect()
    }

    fn path(spans: &[SpanNode], segs: &[Segment]) -> Vec<(String, i64, i64)> {
        segs.iter().map(|g| (spans[g.index].span_id.clone(), g.start, g.end)).collect()
    }

    /// root [0,100]: a [10,40] sequential b [50,90]; b has parallel c [55,70], d [60,85].
    fn fan_out() -> Vec<SpanNode> {
        vec![
            s("d", Some("b"), 60, 85),
            s("root", None, 0, 100),
            s("b", Some("root"), 50, 90),
            s("a", Some("root"), 10, 40),
            s("c", Some("b"), 55, 70),
        ]
    }

    #[test]
    fn depth_first_order_and_self_time() {
        let spans = fan_out();
        let tree = SpanTree::build(&spans);
        let rows = depth_first(&spans, &tree);
        let expected: Vec<(String, usize)> =
            [("root", 0), ("a", 1), ("b", 1), ("c", 2), ("d", 2)].iter().map(|(i, d)| (i.to_string(), *d)).collect();
        assert_eq!(ids(&spans, &rows), expected);
        let path: Vec<&str> = path_of(&rows, 3).iter().flatten().map(|&i| spans[i].span_id.as_str()).collect();
        assert_eq!(path, ["root", "b", "c"]);
        assert_eq!(rows[0].child_count, 2);
        // By hand: root 100 − (30 + 40) = 30; a 30; b 40 − union([55,70],[60,85]) = 40 − 30 = 10; c 15; d 25.
        let st = self_times(&spans, &tree);
        let by_id: HashMap<&str, i64> = spans.iter().map(|x| x.span_id.as_str()).zip(st).collect();
        assert_eq!((by_id["root"], by_id["a"], by_id["b"], by_id["c"], by_id["d"]), (30, 30, 10, 15, 25));
    }

    #[test]
    fn critical_path_of_fan_out() {
        // By hand, walking back from 100: root [90,100]; b (ends 90): d ends 85 → b [85,90];
        // d [60,85]; limit 60: c ends 70 > 60 → skipped; b [50,60]; back in root limit 50:
        // a ends 40 → root [40,50]; a [10,40]; root [0,10].
        let spans = fan_out();
        let tree = SpanTree::build(&spans);
        let got = path(&spans, &critical_path(&spans, &tree));
        let want: Vec<(String, i64, i64)> = [
            ("root", 0, 10),
            ("a", 10, 40),
            ("root", 40, 50),
            ("b", 50, 60),
            ("d", 60, 85),
            ("b", 85, 90),
            ("root", 90, 100),
        ]
        .iter()
        .map(|(i, a, b)| (i.to_string(), *a, *b))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn async_child_outliving_its_parent_is_clipped() {
        // root [0,100] → worker [20,60] → async [50,150] (outlives both): clipped to [50,60].
        // Path by hand: root [60,100]; worker: async ends 60 → async [50,60]; worker [20,50]; root [0,20].
        let spans = vec![s("root", None, 0, 100), s("worker", Some("root"), 20, 60), s("async", Some("worker"), 50, 150)];
        let tree = SpanTree::build(&spans);
        let got = path(&spans, &critical_path(&spans, &tree));
        assert_eq!(
            got,
            vec![
                ("root".into(), 0, 20),
                ("worker".into(), 20, 50),
                ("async".into(), 50, 60),
                ("root".into(), 60, 100)
            ]
        );
        // Self time clips too: worker 40 − 10 = 30.
        assert_eq!(self_times(&spans, &tree), vec![60, 30, 100]);
    }

    #[test]
    fn child_entirely_outside_parent_is_dropped_from_the_path() {
        let spans = vec![s("root", None, 0, 10), s("late", Some("root"), 20, 30)];
        let tree = SpanTree::build(&spans);
        assert_eq!(path(&spans, &critical_path(&spans, &tree)), vec![("root".into(), 0, 10)]);
        assert_eq!(depth_first(&spans, &tree).len(), 2, "still in the tree");
    }

    #[test]
    fn orphans_single_span_and_only_orphans() {
        // o's parent "gone" is absent: orphan at depth 0, after the root (later start).
        let spans = vec![s("root", None, 0, 10), s("o", Some("gone"), 5, 7), s("k", Some("o"), 5, 6)];
        let tree = SpanTree::build(&spans);
        assert_eq!(tree.is_orphan, vec![false, true, false]);
        let rows = depth_first(&spans, &tree);
        assert_eq!(ids(&spans, &rows), vec![("root".into(), 0), ("o".into(), 0), ("k".into(), 1)]);
        let single = vec![s("x", None, 3, 8)];
        assert_eq!(path(&single, &critical_path(&single, &SpanTree::build(&single))), vec![("x".into(), 3, 8)]);
        // Only orphans: the longest one is the root.
        let orphans = vec![s("p", Some("z"), 0, 5), s("q", Some("z"), 1, 9)];
        let t = SpanTree::build(&orphans);
        assert_eq!(critical_root(&orphans, &t), Some(1));
        assert!(critical_path(&[], &SpanTree::build(&[])).is_empty());
    }

    #[test]
    fn duplicates_and_cycles_terminate_and_keep_every_span() {
        // Duplicate "a" (two rows), and a cycle x → y → x with no root.
        let spans = vec![
            s("r", None, 0, 10),
            s("a", Some("r"), 1, 2),
            s("a", Some("r"), 3, 4),
            s("x", Some("y"), 5, 6),
            s("y", Some("x"), 6, 7),
            s("self", Some("self"), 8, 9),
        ];
        let tree = SpanTree::build(&spans);
        let rows = depth_first(&spans, &tree);
        let mut seen: Vec<usize> = rows.iter().map(|r| r.index).collect();
        seen.sort();
        assert_eq!(seen, (0..spans.len()).collect::<Vec<_>>());
        let depth0: Vec<&str> = rows.iter().filter(|r| r.depth == 0).map(|r| spans[r.index].span_id.as_str()).collect();
        // Tops first (the root, and "self", whose parent is itself), then the cycle from its earliest span.
        assert_eq!(depth0, ["r", "self", "x"]);
        let segs = critical_path(&spans, &tree);
        assert_eq!(segs.iter().map(|g| g.end - g.start).sum::<i64>(), 10);
    }

    #[test]
    fn hundred_thousand_span_traces_are_fast_and_do_not_overflow() {
        // A 100k-deep chain and a 100k-wide fan-out (each child inside its parent).
        let n = 100_000;
        let chain: Vec<SpanNode> = (0..n)
            .map(|i| s(&i.to_string(), (i > 0).then(|| (i - 1).to_string()).as_deref(), i as i64, 2 * n as i64 - i as i64))
            .collect();
        let fan: Vec<SpanNode> = (0..n)
            .map(|i| if i == 0 { s("0", None, 0, 10 * n as i64) } else { s(&i.to_string(), Some("0"), 10 * i as i64, 10 * i as i64 + 5) })
            .collect();
        for spans in [chain, fan] {
            let started = std::time::Instant::now();
            let tree = SpanTree::build(&spans);
            let rows = depth_first(&spans, &tree);
            let paths: usize = (0..rows.len()).map(|r| path_of(&rows, r).len()).sum();
            let st = self_times(&spans, &tree);
            let segs = critical_path(&spans, &tree);
            let elapsed = started.elapsed();
            assert_eq!(rows.len(), n);
            assert!(paths <= n * (MAX_PATH_SPANS + 1));
            assert_eq!(st.len(), n);
            assert_eq!(segs.iter().map(|g| g.end - g.start).sum::<i64>(), spans[0].end - spans[0].start);
            // Generous for an unoptimised build; release is ~20x faster (BENCHMARKS.md).
            assert!(elapsed.as_secs_f64() < 10.0, "{elapsed:?}");
        }
    }

    /// Random valid trees: each span's parent is an earlier span; children lie inside parents.
    fn arb_tree() -> impl Strategy<Value = Vec<SpanNode>> {
        (1usize..60).prop_flat_map(|n| {
            proptest::collection::vec((any::<u16>(), any::<u16>(), any::<u16>()), n).prop_map(|raw| {
                let mut spans: Vec<SpanNode> = Vec::with_capacity(raw.len());
                for (i, (p, a, b)) in raw.into_iter().enumerate() {
                    if i == 0 {
                        spans.push(s("0", None, 0, 10_000 + i64::from(a)));
                        continue;
                    }
                    let parent = usize::from(p) % i;
                    let (ps, pe) = (spans[parent].start, spans[parent].end);
                    let len = pe - ps;
                    let x = ps + i64::from(a) * len / 65_535;
                    let y = ps + i64::from(b) * len / 65_535;
                    spans.push(s(&i.to_string(), Some(&parent.to_string()), x.min(y), x.max(y)));
                }
                spans
            })
        })
    }

    /// Sequential siblings only (each child after the previous one): then self times sum to
    /// exactly the root's duration.
    fn arb_sequential_tree() -> impl Strategy<Value = Vec<SpanNode>> {
        proptest::collection::vec((any::<u8>(), 1u16..1000), 1..40).prop_map(|raw| {
            let mut spans = vec![s("0", None, 0, 1_000_000)];
            let mut next_free: Vec<i64> = vec![0];
            for (i, (p, len)) in raw.into_iter().enumerate() {
                let parent = usize::from(p) % spans.len();
                let start = next_free[parent].max(spans[parent].start);
                let end = (start + i64::from(len)).min(spans[parent].end);
                next_free[parent] = end;
                spans.push(s(&(i + 1).to_string(), Some(&parent.to_string()), start, end));
                next_free.push(start);
            }
            spans
        })
    }

    proptest! {
        #[test]
        fn sequential_self_times_sum_to_root_duration(spans in arb_sequential_tree()) {
            let tree = SpanTree::build(&spans);
            prop_assert_eq!(self_times(&spans, &tree).iter().sum::<i64>(), 1_000_000);
        }

        #[test]
        fn critical_path_tiles_the_root(spans in arb_tree()) {
            let tree = SpanTree::build(&spans);
            let segs = critical_path(&spans, &tree);
            let root = &spans[0];
            let mut t = root.start;
            for g in &segs {
                prop_assert_eq!(g.start, t, "segments are contiguous, no gap or overlap");
                prop_assert!(g.end > g.start, "no zero-length segments");
                prop_assert!(g.start >= spans[g.index].start && g.end <= spans[g.index].end);
                t = g.end;
            }
            prop_assert_eq!(t, root.end);
        }

        #[test]
        fn self_times_are_bounded_and_tree_visits_each_span_once(spans in arb_tree()) {
            let tree = SpanTree::build(&spans);
            let st = self_times(&spans, &tree);
            let root_duration = spans[0].end - spans[0].start;
            for (i, t) in st.iter().enumerate() {
                prop_assert!(*t >= 0 && *t <= spans[i].end - spans[i].start);
            }
            // Every instant of the root is self time of at least one span (a deepest span
            // covering it), so the sum is at least the root's duration. It can exceed it:
            // parallel siblings each count the instants they share.
            prop_assert!(st.iter().sum::<i64>() >= root_duration);
            let rows = depth_first(&spans, &tree);
            let mut seen: Vec<usize> = rows.iter().map(|r| r.index).collect();
            seen.sort();
            prop_assert_eq!(seen, (0..spans.len()).collect::<Vec<_>>());
            for (i, r) in rows.iter().enumerate() {
                let expected = if r.depth < MAX_PATH_SPANS { r.depth + 1 } else { MAX_PATH_SPANS + 1 };
                prop_assert_eq!(path_of(&rows, i).len(), expected);
            }
        }
    }
}
