CREATE SOURCE d FROM DETECTIONS 'data/market.jsonl';
CREATE VIEW per_minute AS
  SELECT window_end AS until, count(*) AS detections
  FROM TUMBLE(d, event_time, INTERVAL '1' MINUTE)
  GROUP BY window_end;
CREATE SINK out FROM per_minute INTO STDOUT;
