"Packaging for fastai_active: everything is read from settings.ini (nbdev 2 layout)."
import shlex
from configparser import ConfigParser

import setuptools

config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

expected = ('version description keywords author author_email license status min_python '
            'audience language lib_name user branch git_url').split()
missing = [o for o in expected if o not in cfg]
if missing: raise ValueError(f"settings.ini is missing {missing}")

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable',
            '6 - Mature', '7 - Inactive']
py_versions = '3.10 3.11 3.12 3.13'.split()

def reqs(key):
    "Split a settings.ini requirement list with shell rules, so `fastcore>=1.8,<2` stays one item"
    return shlex.split(cfg.get(key, ''))

lic = licenses[cfg['license'].lower()]
min_python = cfg['min_python']
setuptools.setup(
    name=cfg['lib_name'],
    license=lic[0],
    classifiers=['Development Status :: ' + statuses[int(cfg['status'])],
                 'Intended Audience :: ' + cfg['audience'].title(),
                 'License :: ' + lic[1],
                 'Natural Language :: ' + cfg['language'].title()]
               + [f'Programming Language :: Python :: {v}' for v in py_versions[py_versions.index(min_python):]],
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=['fastai_active', 'fastai_active.*']),
    include_package_data=True,
    install_requires=reqs('requirements'),
    # optional extras: `pip install fastai_active[ray]` for scoring pools on Ray (fastai_active.scale.distributed)
    extras_require={'dev': reqs('dev_requirements'), 'docs': reqs('docs_requirements'),
                    'labelstudio': reqs('labelstudio_requirements'), 'integration': reqs('integration_requirements'),
                    'ray': reqs('ray_requirements'), 'detection': reqs('detection_requirements')},
    python_requires='>=' + min_python,
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    version=cfg['version'], description=cfg['description'], keywords=cfg['keywords'],
    author=cfg['author'], author_email=cfg['author_email'],
)
