"""A catalog and what is known from it: readers, decoding, images and downloads, records, the combined text,
splits, facets, and the queries generated from its fields. Nothing here imports the store, a model or a UI.

    data = read_catalog("sample_catalog")          # mmtui.catalog.readers: products + rejects, any layout
    rejects = resolve_images(data.products, data.base_dir, settings.image_cache_dir)   # mmtui.catalog.images
    text = combined_text(product)                   # mmtui.catalog.text
"""
