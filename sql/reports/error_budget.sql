-- Error budget per service against a 99.9 % availability SLO (server spans): how much of the
-- window's budget (0.1 % of requests may fail) the errors consumed. burn_rate > 1 means the
-- service fails faster than the SLO allows.
SELECT service_name,
       count(*) AS requests,
       sum(CASE WHEN status_code = 'ERROR' THEN 1 ELSE 0 END) AS errors,
       round(100.0 * sum(CASE WHEN status_code = 'ERROR' THEN 1 ELSE 0 END) / count(*), 3) AS error_pct,
       round((sum(CASE WHEN status_code = 'ERROR' THEN 1 ELSE 0 END) * 1.0 / count(*)) / 0.001, 2) AS burn_rate,
       round(100.0 * (1 - least(1.0, (sum(CASE WHEN status_code = 'ERROR' THEN 1 ELSE 0 END) * 1.0 / count(*)) / 0.001)), 1)
           AS budget_left_pct
FROM spans
WHERE span_kind = 'SERVER'
GROUP BY service_name
ORDER BY burn_rate DESC, service_name
