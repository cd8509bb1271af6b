CREATE SOURCE d FROM DETECTIONS 'data/market.jsonl';
CREATE VIEW v AS
  SELECT source_id, window_start, sum(w) AS width, max(h) AS tallest
  FROM TUMBLE(d, event_time, INTERVAL '10' SECOND)
  GROUP BY source_id, window_start;
CREATE SINK out FROM v INTO STDOUT;
