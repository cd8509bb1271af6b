CREATE SOURCE d FROM DETECTIONS 'data/market.jsonl';
CREATE VIEW v AS
  SELECT source_id, window_start, count(*) AS n
  FROM TUMBLE(d, event_time, INTERVAL '7500 ms')
  GROUP BY source_id, window_start;
CREATE SINK out FROM v INTO STDOUT;
