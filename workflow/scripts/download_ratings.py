from dmfcore.ratings import download_ratings
from dmfcore.records import logged

with logged(snakemake.log[0]):
    source = snakemake.params.source
    download_ratings(source["url"], snakemake.output[0], source["sha256"])
