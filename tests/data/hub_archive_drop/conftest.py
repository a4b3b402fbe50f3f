# pytest puts this folder on sys.path, so the plugin's own tests import `hub_archive_drop` as
# they would after `pip install -e .`
