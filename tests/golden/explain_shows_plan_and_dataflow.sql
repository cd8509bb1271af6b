-- EXPLAIN plans a statement and shows what it became; the job does not run.
CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl' WITH (lateness = '2s');
EXPLAIN CREATE STREAM people AS SELECT * FROM d WHERE label = 'person';
EXPLAIN CREATE VIEW busy AS
  SELECT source_id, window_start, count(*) AS n, max(confidence) AS best
  FROM HOP(people, event_time, INTERVAL '5' SECOND, INTERVAL '10' SECOND)
  GROUP BY source_id, window_start
  HAVING count(*) > 3;
EXPLAIN CREATE SINK out FROM busy INTO STDOUT;
