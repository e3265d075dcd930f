from flask import Flask, request, jsonify
import requests

app = Flask(__name__)

@app.route('/webhook', methods=['POST'])
def handle_completion():
    data = request.json
    
    # Process completed generation
    image_data = data.get('images', [])
    request_id = data.get('request_id')
    
    # Store result in database
    store_generated_image(request_id, image_data)
    
    return jsonify({'status': 'received'})

def generate_with_webhook(prompt, callback_url):
    data = {
        'prompt': prompt,
        'webhook_url': callback_url,
        'async': True
    }
    
    response = requests.post('/generate-image', json=data)
    return response.json().get('request_id')
# --- end of the guide's sample; checks follow ---
# The guide leaves `store_generated_image` and the hosting of the handler to the reader.
import base64, io, threading, time
from PIL import Image
from werkzeug.serving import make_server

stored = []
def store_generated_image(request_id, image_data):
    stored.append((request_id, image_data))

server = make_server('127.0.0.1', 0, app)
threading.Thread(target=server.serve_forever, daemon=True).start()
callback_url = f'http://127.0.0.1:{server.server_port}/webhook'

request_id = generate_with_webhook('A lighthouse on a cliff at dawn', callback_url)
assert request_id and request_id.startswith('req_'), request_id
deadline = time.time() + 60
while not stored and time.time() < deadline:
    time.sleep(0.05)
server.shutdown()
assert stored, 'the webhook never reached the handler'
got_id, images = stored[0]
assert got_id == request_id, (got_id, request_id)
assert len(images) == 1, images
Image.open(io.BytesIO(base64.b64decode(images[0]))).verify()
