-- emit = 'final' on a view without a window: one row per group, when the
-- input ends.
CREATE SOURCE d FROM DETECTIONS 'data/market.jsonl';
CREATE VIEW totals WITH (emit = 'final') AS
  SELECT label, count(*) AS n, count(DISTINCT frame_id) AS frames FROM d WHERE confidence > 0.5 GROUP BY label;
CREATE SINK out FROM totals INTO STDOUT;
