//! Flight SQL metadata replies: server facts (`GetSqlInfo`), types (`GetXdbcTypeInfo`), the
//! catalog (`GetCatalogs`, `GetDbSchemas`, `GetTables`, `GetTableTypes`) and the key queries,
//! which tracelake answers empty (no primary or foreign keys), with exactly the schemas of the
//! Flight SQL specification so that strict drivers accept them.

use std::sync::{Arc, LazyLock};

use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder};
use arrow_flight::sql::{
    CommandGetDbSchemas, CommandGetTables, Nullable, Searchable, SqlInfo, SqlNullOrdering, SqlSupportedCaseSensitivity,
    XdbcDataType,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::TableType;
use datafusion::execution::context::SessionContext;

use crate::error::QueryError;

/// Server facts for `GetSqlInfo`.
pub static SQL_INFO: LazyLock<SqlInfoData> = LazyLock::new(|| {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "tracelake");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.5");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerTransaction, 0i32); // SQL_SUPPORTED_TRANSACTION_NONE
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
    b.append(SqlInfo::FlightSqlServerTransactionTimeout, 0i32);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(SqlInfo::SqlIdentifierCase, SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(SqlInfo::SqlQuotedIdentifierCase, SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32);
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    b.append(SqlInfo::SqlNullOrdering, SqlNullOrdering::SqlNullsSortedHigh as i32);
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(SqlInfo::SqlNullPlusNullIsNull, true);
    b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    b.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    b.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlSelectForUpdateSupported, false);
    b.append(SqlInfo::SqlStoredProceduresSupported, false);
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.append(SqlInfo::SqlBatchUpdatesSupported, false);
    b.append(SqlInfo::SqlSavepointsSupported, false);
    b.append(SqlInfo::SqlNamedParametersSupported, false);
    b.append(SqlInfo::SqlLocatorsUpdateCopy, false);
    b.append(SqlInfo::SqlStoredFunctionsUsingCallSyntaxSupported, false);
    // Built from a fixed list of valid entries: cannot fail.
    b.build().expect("static SqlInfo")
});

/// The SQL types results can have, for `GetXdbcTypeInfo`.
pub static XDBC_TYPES: LazyLock<XdbcTypeInfoData> = LazyLock::new(|| {
    let mut b = XdbcTypeInfoDataBuilder::new();
    let t = |name: &str, data_type: XdbcDataType, size: Option<i32>, prefix: Option<&str>| XdbcTypeInfo {
        type_name: name.into(),
        data_type,
        column_size: size,
        literal_prefix: prefix.map(Into::into),
        literal_suffix: prefix.map(Into::into),
        create_params: None,
        nullable: Nullable::NullabilityNullable,
        case_sensitive: matches!(data_type, XdbcDataType::XdbcVarchar),
        searchable: Searchable::Full,
        unsigned_attribute: None,
        fixed_prec_scale: false,
        auto_increment: None,
        local_type_name: Some(name.into()),
        minimum_scale: None,
        maximum_scale: None,
        sql_data_type: data_type,
        datetime_subcode: None,
        num_prec_radix: None,
        interval_precision: None,
    };
    b.append(t("BOOLEAN", XdbcDataType::XdbcBit, Some(1), None));
    b.append(t("TINYINT", XdbcDataType::XdbcTinyint, Some(8), None));
    b.append(t("BIGINT", XdbcDataType::XdbcBigint, Some(64), None));
    b.append(t("VARBINARY", XdbcDataType::XdbcVarbinary, None, None));
    b.append(t("INTEGER", XdbcDataType::XdbcInteger, Some(32), None));
    b.append(t("SMALLINT", XdbcDataType::XdbcSmallint, Some(16), None));
    b.append(t("FLOAT", XdbcDataType::XdbcFloat, Some(24), None));
    b.append(t("DOUBLE", XdbcDataType::XdbcDouble, Some(53), None));
    b.append(t("VARCHAR", XdbcDataType::XdbcVarchar, None, Some("'")));
    b.append(t("DATE", XdbcDataType::XdbcDate, None, Some("'")));
    b.append(t("TIMESTAMP", XdbcDataType::XdbcTimestamp, None, Some("'")));
    b.build().expect("static XdbcTypeInfo")
});

/// Table types tracelake has.
pub const TABLE_TYPES: [&str; 2] = ["TABLE", "VIEW"];

fn table_type_name(t: TableType) -> &'static str {
    match t {
        TableType::Base | TableType::Temporary => "TABLE",
        TableType::View => "VIEW",
    }
}

/// Every (catalog, schema) of the session, filtered as `GetDbSchemas` asks.
pub fn db_schemas(ctx: &SessionContext, query: CommandGetDbSchemas) -> Result<RecordBatch, QueryError> {
    let mut builder = query.into_builder();
    for catalog_name in ctx.catalog_names() {
        if let Some(catalog) = ctx.catalog(&catalog_name) {
            for schema in catalog.schema_names() {
                builder.append(&catalog_name, schema);
            }
        }
    }
    builder.build().map_err(|e| QueryError::Internal(e.to_string()))
}

/// Every table and view, filtered as `GetTables` asks, with Arrow schemas if requested.
pub async fn tables(ctx: &SessionContext, query: CommandGetTables) -> Result<RecordBatch, QueryError> {
    let mut builder = query.into_builder();
    for catalog_name in ctx.catalog_names() {
        let Some(catalog) = ctx.catalog(&catalog_name) else { continue };
        for schema_name in catalog.schema_names() {
            let Some(schema) = catalog.schema(&schema_name) else { continue };
            for table_name in schema.table_names() {
                let table: Option<Arc<dyn TableProvider>> = schema.table(&table_name).await?;
                let Some(table) = table else { continue };
                builder
                    .append(&catalog_name, &schema_name, &table_name, table_type_name(table.table_type()), &table.schema())
                    .map_err(|e| QueryError::Internal(e.to_string()))?;
            }
        }
    }
    builder.build().map_err(|e| QueryError::Internal(e.to_string()))
}

/// Schema of `GetPrimaryKeys` results.
pub fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

/// Schema of `GetExportedKeys`, `GetImportedKeys` and `GetCrossReference` results.
pub fn foreign_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("pk_catalog_name", DataType::Utf8, true),
        Field::new("pk_db_schema_name", DataType::Utf8, true),
        Field::new("pk_table_name", DataType::Utf8, false),
        Field::new("pk_column_name", DataType::Utf8, false),
        Field::new("fk_catalog_name", DataType::Utf8, true),
        Field::new("fk_db_schema_name", DataType::Utf8, true),
        Field::new("fk_table_name", DataType::Utf8, false),
        Field::new("fk_column_name", DataType::Utf8, false),
        Field::new("key_sequence", DataType::Int32, false),
        Field::new("fk_key_name", DataType::Utf8, true),
        Field::new("pk_key_name", DataType::Utf8, true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
}
