# One task at a time: a long campaign on machines that may not outlive a few hours (issue 29).
#
#   snakemake --cores 2 --config preset=cpu100k next_task
#
# builds the seed episodes, training and held-out evaluation of the first task in the preset's `campaign_order`
# that is not done: its evaluations are not all on disk, nor its runs in the committed report's record
# (reports/PRESET/record/, planet/report/record.py), which is what survives a lost machine. Rerun the same command to resume that task (a training job resumes from
# its checkpoint) or, once its evaluations are written, to start the next one. The report is not part of the
# target: `planet report --pipeline-preset PRESET` regenerates the record from whatever has finished.

rule next_task:
    input:
        task_evals(NEXT_TASK) if NEXT_TASK else [],
