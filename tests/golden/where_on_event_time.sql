CREATE SOURCE d FROM DETECTIONS 'data/market.jsonl';
CREATE VIEW early AS
  SELECT source_id, window_start, count(*) AS n
  FROM TUMBLE(d, event_time, INTERVAL '5' SECOND)
  WHERE event_time < TIMESTAMP '2026-01-01T00:00:07Z' AND source_id <> 'market-b'
  GROUP BY source_id, window_start;
CREATE SINK out FROM early INTO STDOUT;
