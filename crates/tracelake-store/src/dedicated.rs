//! Filters on attribute maps, also applied to the dedicated attribute columns.
//!
//! Users write `span_attributes['http.route'] = '/cart'` (or `attr(span_attributes,
//! 'http.route')`), not `http_route = '/cart'`. The map predicate cannot prune anything:
//! Parquet has no statistics inside a map. Every well-known attribute that has a dedicated
//! column (`schema::DEDICATED_COLUMNS`) holds exactly the map's value (the same rendering, the
//! same limits, null when the key is absent), so `map['key'] = v` implies `column = v`.
//! [`DedicatedColumnFilters`] adds that implied predicate to the query's filter; files, row
//! groups and pages are then pruned by the column's statistics and, with filter pushdown, rows
//! are filtered on the cheap column before the maps are decoded. The original predicate is
//! kept, so results never change.

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult};
use datafusion::common::{Column, DFSchema, Result, ScalarValue};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Filter, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;
use tracelake_schema::schema::{AttributeScope, DEDICATED_COLUMNS, col as c};

use crate::lookup::string_literal;

/// Adds, to every `Filter`, the dedicated-column predicates its map predicates imply (when the
/// filter's input has those columns). Runs as an analyzer rule, so the optimizer then pushes
/// the new predicates into the scan like any other.
#[derive(Debug, Default)]
pub struct DedicatedColumnFilters;

impl AnalyzerRule for DedicatedColumnFilters {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Filter(filter) => {
                let present: Vec<&Expr> = split_conjunction(&filter.predicate);
                let extra: Vec<Expr> = implied_dedicated_filters(&filter.predicate)
                    .into_iter()
                    .filter_map(|e| typed_for(e, filter.input.schema()))
                    .filter(|e| !present.contains(&e))
                    .collect();
                if extra.is_empty() {
                    return Ok(Transformed::no(LogicalPlan::Filter(filter)));
                }
                let predicate = extra.into_iter().fold(filter.predicate, Expr::and);
                Ok(Transformed::yes(LogicalPlan::Filter(Filter::try_new(predicate, filter.input)?)))
            }
            other => Ok(Transformed::no(other)),
        })
        .data()
    }

    fn name(&self) -> &str {
        "tracelake_dedicated_column_filters"
    }
}

/// `filter` with its literals cast to the column's type, or `None` when `schema` lacks the
/// column (a table or subquery without dedicated columns).
fn typed_for(filter: Expr, schema: &DFSchema) -> Option<Expr> {
    let cast = |column: &Column, value: &ScalarValue| -> Option<Expr> {
        let (_, field) = schema.qualified_field_from_column(column).ok()?;
        value.cast_to(field.data_type()).ok().map(|v| Expr::Literal(v, None))
    };
    match filter {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match (*left, *right) {
            (Expr::Column(column), Expr::Literal(value, _)) => {
                let value = cast(&column, &value)?;
                Some(Expr::BinaryExpr(BinaryExpr::new(Box::new(Expr::Column(column)), op, Box::new(value))))
            }
            _ => None,
        },
        Expr::InList(mut list) => {
            let Expr::Column(column) = list.expr.as_ref() else { return None };
            let values: Option<Vec<Expr>> = list
                .list
                .iter()
                .map(|e| match e {
                    Expr::Literal(v, _) => cast(column, v),
                    _ => None,
                })
                .collect();
            list.list = values?;
            Some(Expr::InList(list))
        }
        _ => None,
    }
}

/// Predicates on dedicated columns implied by one filter (empty if it implies none). The
/// column has the map column's qualifier.
pub fn implied_dedicated_filters(filter: &Expr) -> Vec<Expr> {
    match filter {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
            let mut out = implied_dedicated_filters(left);
            out.extend(implied_dedicated_filters(right));
            out
        }
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => {
            let (lookup, value) = match (left.as_ref(), right.as_ref()) {
                (Expr::Literal(v, _), e) | (e, Expr::Literal(v, _)) => (e, v),
                _ => return vec![],
            };
            match (dedicated_column(lookup), string_literal(value)) {
                (Some(column), Some(_)) => vec![Expr::Column(column).eq(Expr::Literal(value.clone(), None))],
                _ => vec![],
            }
        }
        Expr::InList(list) if !list.negated => {
            let Some(column) = dedicated_column(&list.expr) else { return vec![] };
            let all_strings =
                list.list.iter().all(|e| matches!(e, Expr::Literal(v, _) if string_literal(v).is_some()));
            if all_strings { vec![Expr::Column(column).in_list(list.list.clone(), false)] } else { vec![] }
        }
        _ => vec![],
    }
}

/// The dedicated column that `expr` reads, when it is `map['key']` or `attr(map, 'key')` on
/// `span_attributes` / `resource_attributes` with a key that has one.
fn dedicated_column(expr: &Expr) -> Option<Column> {
    let Expr::ScalarFunction(call) = expr else { return None };
    if !matches!(call.func.name(), "get_field" | "attr") {
        return None;
    }
    let [Expr::Column(map), Expr::Literal(key, _)] = call.args.as_slice() else { return None };
    let scope = match map.name.as_str() {
        c::SPAN_ATTRIBUTES => AttributeScope::Span,
        c::RESOURCE_ATTRIBUTES => AttributeScope::Resource,
        _ => return None,
    };
    let key = string_literal(key)?;
    let dedicated = DEDICATED_COLUMNS.iter().find(|d| d.scope == scope && d.key == key)?;
    Some(Column::new(map.relation.clone(), dedicated.column))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::functions::core::get_field;
    use datafusion::logical_expr::{ScalarUDF, col, lit};
    use tracelake_udfs::attr::AttrFunc;

    use super::*;

    fn field(map: &str, key: &str) -> Expr {
        get_field().call(vec![col(map), lit(key)])
    }

    #[test]
    fn map_equality_implies_the_dedicated_column() {
        let f = field("span_attributes", "http.route").eq(lit("/cart"));
        assert_eq!(implied_dedicated_filters(&f), vec![col("http_route").eq(lit("/cart"))]);
        // Mirrored, and through `attr`.
        let attr = Arc::new(ScalarUDF::new_from_impl(AttrFunc::new()));
        let f = lit("prod").eq(attr.call(vec![col("resource_attributes"), lit("deployment.environment")]));
        assert_eq!(implied_dedicated_filters(&f), vec![col("deployment_environment").eq(lit("prod"))]);
        // IN lists, and both halves of an AND.
        let f = field("span_attributes", "http.response.status_code")
            .in_list(vec![lit("500"), lit("503")], false)
            .and(field("span_attributes", "db.system").eq(lit("redis")));
        assert_eq!(
            implied_dedicated_filters(&f),
            vec![
                col("http_response_status_code").in_list(vec![lit("500"), lit("503")], false),
                col("db_system").eq(lit("redis")),
            ]
        );
    }

    #[test]
    fn other_predicates_imply_nothing() {
        // Wrong scope: http.route is a span attribute, not a resource attribute.
        assert!(implied_dedicated_filters(&field("resource_attributes", "http.route").eq(lit("/x"))).is_empty());
        // No dedicated column for the key.
        assert!(implied_dedicated_filters(&field("span_attributes", "user.id").eq(lit("7"))).is_empty());
        // Not implied: inequality, negated IN, OR, a non-literal value.
        let route = || field("span_attributes", "http.route");
        assert!(implied_dedicated_filters(&route().not_eq(lit("/x"))).is_empty());
        assert!(implied_dedicated_filters(&route().in_list(vec![lit("/x")], true)).is_empty());
        assert!(implied_dedicated_filters(&route().eq(lit("/x")).or(route().eq(lit("/y")))).is_empty());
        assert!(implied_dedicated_filters(&route().eq(col("span_name"))).is_empty());
    }
}
