from setuptools import find_packages, setup

setup(name='mmkdflow', version='0.1.0', packages=find_packages(include=['mmkdflow*']))
