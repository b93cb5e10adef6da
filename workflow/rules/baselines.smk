# Model-free baselines. Until agents are trained here, the report shows the published reference scores
# (planet/data/published_scores.csv: the paper's A3C, D4PG and CEM + true simulator rows, later pixel agents),
# always as reference rows, never mixed with runs made here.

PUBLISHED_SCORES = "planet/data/published_scores.csv"
