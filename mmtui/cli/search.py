"""`mmtui search`: find products by words or by a picture."""

from __future__ import annotations

from pathlib import Path

import click

from mmtui.cli.options import RegionCount, count
from mmtui.cli.common import data_dir_option, json_option, model_options, print_json, settings_from, where_option


# -- search -----------------------------------------------------------------------------------
@click.command()
@click.argument("text", required=False)
@click.option("--image", "image", type=click.Path(path_type=Path), default=None, help="Search by this picture.")
@click.option("--region", "region", metavar="X,Y,W,H", default=None,
              help="With --image: search by this part of the picture only (pixels, or fractions such as 0.5,0,0.5,1).")
@click.option("--regions", "regions", type=RegionCount(), default=None,
              help="With --image: propose the regions of a scene photo that look like products (N of them; auto: 8) "
                   "and search each; -k results per region.")
@click.option("-k", "k", type=count(1, 10_000), default=10, show_default=True, help="Number of results (1-10000).")
@click.option("--mode", type=click.Choice(["image", "text", "lexical", "fused", "hybrid"]), default=None,
              help="image: vs product images; text: vs product texts; lexical: BM25; fused: one vector per "
                   "product from its image and text; hybrid: all signals fused "
                   "[default: hybrid for text, image for --image].")
@click.option("--drop", "drops", multiple=True, type=click.Choice(["kind", "person", "colour", "brand", "price"]),
              help="Leave this part of what the query was understood to ask for out (repeatable).")
@click.option("--literal", is_flag=True, help="Take the words as they are: no query understanding.")
@click.option("--facets", "show_facets", is_flag=True,
              help="Count each kind, colour, person, brand and price band over the top --top results "
                   '(--json: "facets"), e.g. mmtui search "shoes" --facets.')
@click.option("--top", type=count(1, 10_000), default=100, show_default=True,
              help="Results that --facets counts and --sort orders, e.g. --sort price --top 50.")
@click.option("--sort", "order", type=click.Choice(["relevance", "price", "-price"]), default="relevance",
              show_default=True, help="Order of the results: price sorts the top --top matches by price "
                                      '(cheapest first; -price dearest first), e.g. mmtui search "watch" --sort price.')
@click.option("--collapse", is_flag=True,
              help='Variants of one product (the same title up to colour and size words) as one row "+3 colours" '
                   '(--json: each hit\'s "variants"), e.g. mmtui search "tshirt" --collapse.')
@where_option
@data_dir_option
@model_options
@json_option
def search(text, image, region, regions, k, mode, drops, literal, show_facets, top, order, collapse, wheres, data_dir,
           model, checkpoint, device, as_json) -> None:
    """Find products by TEXT or by --image PATH.

    The words are read against the catalog's kinds of product, persons, colours, brands and
    price phrases ("ladies black watches under 50"); what was understood is shown with the
    results, and ranks them in hybrid mode.

    TEXT can be a compound query: parts joined by + and -, each words, a
    picture's path or a product (like:ID), each with an optional weight
    (2:red); "without laces" / "not leather" subtract words the catalog
    has; "cheaper" / "more expensive" next to like:ID compare with its
    price. --json lists the parsed "parts".

    \b
    Examples:
      mmtui search "black running shoes for men"
      mmtui search '"summer dress" + like:12345 - floral'
      mmtui search '2:red + ./photo.jpg' --json
      mmtui search "running shoes without laces"
      mmtui search "watch" --facets --sort price
      mmtui search "ladies black watches" --drop colour
      mmtui search "red dress" --mode image -k 20 --where "price<50"
      mmtui search --image photo.jpg --json
      mmtui search --image room.jpg --region 120,40,200,180
      mmtui search --image room.jpg --regions auto -k 5
    """
    from mmtui.store.filters import parse_where
    from mmtui.query.service import SearchService

    if bool(text) == bool(image):
        raise click.UsageError('give either TEXT or --image PATH, e.g. mmtui search "blue jeans"')
    _check_region_options(image, region, regions)
    filters = [parse_where(w) for w in wheres]
    service = SearchService.open(settings_from(data_dir, model, checkpoint, device))
    if image is not None or mode != "lexical":
        service.load_model()  # so the time printed with the results is the search's, not the model's loading
    wanted = max(k, top) if (show_facets or order != "relevance" or collapse) and regions is None else k
    if regions is not None:
        result = service.search_regions(image, k=k, mode=mode or "image", filters=filters, limit=regions)
    elif image is not None:
        result = service.search_image(image, k=wanted, mode=mode or "image", filters=filters, region=region)
    else:
        result = service.search(text, k=wanted, mode=mode or "hybrid", filters=filters, understand=not literal,
                                drop=drops, compound=True)
    for note in service.notes:  # e.g. why the query model loaded torch: on stderr, so --json stays clean
        click.echo(f"note: {note}", err=True)
    rows = _arrange(service, result, k, top, show_facets, order, collapse) if regions is None else None
    if as_json:
        out = result.to_json()
        if rows is not None:
            out["hits"] = [row.to_json() for row in rows]
        print_json(out)
        return
    from mmtui.cli.render import print_facets, print_hits, print_regions

    if regions is not None:
        print_regions(result)
        return
    print_hits(result, rows, prices=order != "relevance")
    if result.facets is not None:
        print_facets(result.facets)
    failed = [f for f, _ in service.empty_filters(filters)] if not result.hits and image is None else []
    if failed:  # offer the results without the filters that matched nothing
        kept = [f for f in filters if f not in failed]
        print_hits(service.search(text, k=k, mode=mode or "hybrid", filters=kept, understand=not literal,
                                  drop=drops))


def _check_region_options(image, region, regions) -> None:
    if (region or regions) and image is None:
        raise click.UsageError("--region and --regions search part of a picture: give --image PATH too")
    if region and regions:
        raise click.UsageError("give --region X,Y,W,H (one part you choose) or --regions auto (parts mmtui "
                               "proposes), not both")


def _arrange(service, result, k: int, top: int, show_facets: bool, order: str, collapse: bool):
    """Count the facets of the top results, sort them, keep k (collapsed rows when `collapse`: then returned)."""
    from mmtui.query.arrange import sort_hits

    counted = result.hits[:top]
    if show_facets:
        result.facets = service.result_facets(counted, top)
    hits = sort_hits(counted, order) if order != "relevance" else result.hits
    if order != "relevance" and not any(h.price is not None for h in counted):
        result.notes.append(f"--sort {order}: none of these products has a price, so they stay in relevance order")
    if not collapse:
        result.hits = hits[:k]
        return None
    rows = service.collapse(hits)[:k]
    result.hits = [row.hit for row in rows]
    return rows
