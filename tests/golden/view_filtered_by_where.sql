-- People per camera and window, counting confident boxes only.
CREATE SOURCE d FROM DETECTIONS 'data/market.jsonl';
CREATE VIEW people AS
  SELECT source_id, window_start, count(*) AS n, avg(confidence) AS conf
  FROM TUMBLE(d, event_time, INTERVAL '10' SECOND)
  WHERE label = 'person' AND confidence >= 0.5
  GROUP BY source_id, window_start;
CREATE SINK out FROM people INTO STDOUT;
