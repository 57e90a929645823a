//! `tracelake sql`: one query on a data location, no server.

use std::io::Read;

use datafusion::error::DataFusionError;

use tracelake_query::{QueryPolicy, SessionBuilder, SessionOptions};
use tracelake_store::DataLocation;

use crate::cli::{OutputFormat, SqlArgs};
use crate::error::{CliError, Result};
use crate::output::write_results;

/// Runs `tracelake sql`.
pub async fn run(args: SqlArgs) -> Result<()> {
    let query = if args.query == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| CliError::Usage(format!("reading query from stdin: {e}")))?;
        text
    } else {
        args.query
    };
    let location = DataLocation::open_existing(&args.data.data)?;
    if let Some(url) = &args.ballista {
        let remote = |e: DataFusionError| CliError::Ballista { url: url.clone(), message: e.to_string() };
        let ctx = tracelake_ballista::client::remote_session(url, location).await.map_err(remote)?;
        // Physical planning happens on the scheduler: errors other than the SQL's own come
        // from there (or from reaching it).
        let df = match QueryPolicy::ReadOnlyWithSettings.plan(&ctx, &query).await {
            Ok(df) => df,
            Err(tracelake_query::Error::DataFusion(e @ (DataFusionError::Execution(_) | DataFusionError::External(_)))) => {
                return Err(remote(e));
            }
            Err(e) => return Err(e.into()),
        };
        let stream = df.execute_stream().await.map_err(remote)?;
        write_results(stream, args.format, std::io::stdout()).await.map_err(|e| match e {
            CliError::DataFusion(e) => remote(e),
            other => other,
        })?;
        return Ok(());
    }
    let options = SessionOptions { target_partitions: args.target_partitions, memory_limit: args.memory_limit };
    let stdout = std::io::stdout();
    query_to(&location, options, &query, args.format, stdout).await?;
    Ok(())
}

/// Runs `query` on `location` and writes the result to `out`; returns the row count.
pub async fn query_to<W: std::io::Write + Send>(
    location: &DataLocation,
    options: SessionOptions,
    query: &str,
    format: OutputFormat,
    out: W,
) -> Result<usize> {
    let ctx = SessionBuilder::new(location.clone()).with_options(options).build().await?;
    let df = QueryPolicy::ReadOnlyWithSettings.plan(&ctx, query).await?;
    let stream = df.execute_stream().await?;
    write_results(stream, format, out).await
}
