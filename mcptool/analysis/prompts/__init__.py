"""Default prompt files of the analysis (loaded by ``mcptool.analysis.prompting``; a user's
``prompts_dir`` overrides any of them by file name)."""
