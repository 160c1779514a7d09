"""Reports: results.json (the machine contract, product.md §7) and Jinja2 Markdown/HTML."""
