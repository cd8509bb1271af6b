-- Every change of the count, with its diff: folded, the +1 rows that
-- survive are the final counts.
CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl';
CREATE VIEW v WITH (emit = 'updates') AS
  SELECT source_id, window_start, count(*) AS n
  FROM TUMBLE(d, event_time, INTERVAL '1' SECOND)
  GROUP BY source_id, window_start;
CREATE SINK out FROM v INTO STDOUT;
