CREATE SOURCE d FROM DETECTIONS 'data/market.jsonl';
CREATE VIEW v AS
  SELECT label, window_start, count(*) AS n, avg(confidence) AS conf, min(confidence) AS lo, max(confidence) AS hi
  FROM TUMBLE(d, event_time, INTERVAL '10' SECOND)
  GROUP BY label, window_start;
CREATE SINK out FROM v INTO STDOUT;
