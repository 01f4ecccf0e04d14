"""Evaluation of inpainting methods per mask bucket: PSNR, SSIM, L1, LPIPS and FID side by side (issue #4).

- `runner.evaluate(runner.EvalConfig(...))` runs every method on the same seeded (image, mask) pairs
  (`pairing`), scores them (`scoring`) and returns the results.json content;
- `output.write_outputs` writes results.json, results.md (the MSL paper's Table 1 layout, `report`), one plot per
  metric and an example grid (`figures`), and optionally updates a model card;
- `report.model_card_section` is the Markdown for a model card's `metrics_section`;
- `command` is the `hf-faceinpaint evaluate` sub-command.

The modules are imported one by one (this file imports nothing), so the CLI can register `evaluate` without loading
scipy and matplotlib, which come with the `eval` extra.
"""
