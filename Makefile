# Two commands for a new user: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ppnas-installed
# paddledet/paddleseg depend on the deprecated `sklearn` package, whose build refuses without this.
export SKLEARN_ALLOW_DEPRECATED_SKLEARN_PACKAGE_INSTALL := True

.PHONY: install test demo seg-demo bignas-demo fbnet-demo lint clean

$(STAMP): setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,onnx,mnn]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .

demo: $(STAMP)
	$(PY) tools/make_demo_data.py --out data/demo_wider
	rm -rf output/blazeface_demo
	$(PY) tools/train_nas.py -c configs/demo/blazeface_demo.yml

# One-shot (BigNAS) demo: train the supernet once, then rank 40 subnets in the window by inherited AP.
bignas-demo: $(STAMP)
	$(PY) tools/make_demo_data.py --out data/demo_wider
	rm -rf output/blazeface_bignas_demo
	$(PY) tools/bignas.py -c configs/demo/blazeface_bignas_demo.yml --phase train_supnet
	$(PY) tools/bignas.py -c configs/demo/blazeface_bignas_demo.yml --phase search

seg-demo: $(STAMP)
	$(PY) tools/make_seg_demo_data.py --out data/demo_cityscapes
	rm -rf output/deeplabv3p_nas
	$(PY) -u slim/nas/train.py --log_steps 10 --cfg configs/demo/cityscape_demo.yaml --use_mpio \
	  SLIM.NAS_PORT 23333 SLIM.NAS_ADDRESS "" SLIM.NAS_SEARCH_STEPS 2 SLIM.NAS_START_EVAL_EPOCH -1 \
	  SLIM.NAS_IS_SERVER True SLIM.NAS_SPACE_NAME "MobileNetV2SpaceSeg"

# FBNet on PFLD 106-point landmarks: data, LUT, search, retrain, export (about 6 minutes on 2 quiet CPU cores)
FBNET_DEMO := configs/demo/pfld_fbnet_demo.yml
fbnet-demo: $(STAMP)
	$(PY) tools/make_landmark_demo_data.py --out data/demo_106points
	rm -rf output/pfld_fbnet_demo
	$(PY) tools/fbnet.py -c $(FBNET_DEMO) --phase build_lut
	$(PY) tools/fbnet.py -c $(FBNET_DEMO) --phase search
	$(PY) tools/fbnet.py -c $(FBNET_DEMO) --phase retrain
	$(PY) tools/fbnet.py -c $(FBNET_DEMO) --phase export

clean:
	rm -rf output data/demo_wider data/demo_cityscapes data/demo_106points
