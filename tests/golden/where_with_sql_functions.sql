-- Any scalar SQL DataFusion knows: string functions, IN, arithmetic.
CREATE SOURCE d FROM DETECTIONS 'data/market.jsonl';
CREATE VIEW vehicles AS
  SELECT label, window_start, count(*) AS n, max(w) AS widest
  FROM TUMBLE(d, event_time, INTERVAL '30' SECOND)
  WHERE upper(label) IN ('CAR', 'BUS', 'TRUCK', 'TRAIN') OR w * h > 20000
  GROUP BY label, window_start;
CREATE SINK out FROM vehicles INTO STDOUT;
